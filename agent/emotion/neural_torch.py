"""The English network in torch: what training optimises, and the bfloat16 runtime.

Serving reads in float32 through ONNX Runtime (`agent.emotion.onnx_bert`); torch
is imported only by training and by an explicit ``bfloat16`` precision.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from agent.emotion.minilm import encoder_from_arrays, mean_pool
from agent.emotion.minilm_files import BertShape
from agent.emotion.neural import TOKEN_BUDGET

__all__ = ["EmotionNetwork", "TorchRunner"]


class EmotionNetwork(nn.Module):
    """Encoder, mean pooling over real tokens, dropout, one linear layer to the label logits."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(input_ids, attention_mask))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The sentence embedding the head reads: the encoder's mean-pooled tokens."""
        pooled: torch.Tensor = mean_pool(self.encoder(input_ids, attention_mask), attention_mask)
        return pooled

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.dropout(embedding))
        return out


class TorchRunner:
    """A trained network in eval mode, computing in `dtype`: token ids in, label
    probabilities and sentence embeddings (float32) out."""

    def __init__(
        self,
        shape: BertShape,
        weights: Mapping[str, np.ndarray],
        head: tuple[np.ndarray, np.ndarray],
        dtype: torch.dtype,
    ) -> None:
        network = EmotionNetwork(
            encoder_from_arrays(shape, weights), shape.hidden_size, len(head[1])
        )
        with torch.no_grad():
            network.head.weight.copy_(torch.from_numpy(head[0]))
            network.head.bias.copy_(torch.from_numpy(head[1]))
        self._network = network.eval().to(dtype)
        self.precision = str(dtype).removeprefix("torch.")
        self.embedding_size = shape.hidden_size
        self.token_budget = TOKEN_BUDGET

    def __call__(self, input_ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids, attention = torch.from_numpy(input_ids), torch.from_numpy(mask)
        with torch.inference_mode():
            embedding = self._network.embed(ids, attention)
            probabilities = torch.sigmoid(self._network.logits(embedding).float())
        return probabilities.numpy(), embedding.float().numpy()
