"""MiniLM-L6 in plain torch, for training: no transformers at run time.

Importing transformers' BERT costs seconds of start-up (it pulls in dynamo,
distributed tensors, scipy and scikit-learn) for a 6-layer encoder that is
a few dozen lines of torch. The modules here carry transformers' parameter
names, so the package's safetensors file loads as it is and the LoRA deltas
trained on them merge by name. Serving reads emotions through ONNX Runtime
instead (`agent.emotion.onnx_bert`), from the same files.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from agent.emotion.minilm_files import BertShape, WordPieceTokenizer, load_encoder_files
from agent.errors import ConfigError

__all__ = ["BertEncoder", "encoder_from_arrays", "load_minilm", "mean_pool"]


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


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's real tokens (padding excluded)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def encoder_from_arrays(shape: BertShape, weights: Mapping[str, np.ndarray]) -> BertEncoder:
    """A float32 encoder in eval mode holding `weights` (BERT's names; extra keys ignored)."""
    encoder = BertEncoder(shape)
    wanted = encoder.state_dict().keys()
    missing = wanted - weights.keys()
    if missing:
        raise ConfigError(f"encoder weights lack {sorted(missing)[:3]} …")
    encoder.load_state_dict({key: torch.from_numpy(weights[key]) for key in wanted})
    return encoder.eval()


def load_minilm(max_length: int = 128) -> tuple[WordPieceTokenizer, BertEncoder]:
    """Tokenizer and encoder (eval mode, float32) from the package, never the network."""
    tokenizer, shape, weights = load_encoder_files(max_length)
    return tokenizer, encoder_from_arrays(shape, weights)
