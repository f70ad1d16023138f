"""The number format the neural English recognizer computes in.

``auto`` and ``float32`` read in float32 through ONNX Runtime, which reads a lone
sentence in less CPU than torch does in bfloat16 even on CPUs with native bfloat16
instructions, and batches as fast (docs/models.md). ``bfloat16`` runs the network in
torch, for CPUs where that measures faster.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["PRECISIONS", "Precision"]

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
