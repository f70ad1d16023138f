"""The number format the neural English recognizer computes in.

``float32`` reads through ONNX Runtime, which reads a lone sentence in less CPU than
torch does in bfloat16 even on CPUs with native bfloat16 instructions
(docs/models.md). ``int8`` multiplies the encoder's linear layers in integers, also
in ONNX Runtime: about half the CPU a reading, with readings that move by a few
hundredths, so an artifact carries thresholds tuned for it. ``auto`` is ``int8``
where the artifact has those thresholds, else ``float32``. ``bfloat16`` runs the
network in torch, whose batches are faster on CPUs with native bfloat16.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["PRECISIONS", "ComputePrecision", "Precision"]

Precision = Literal["auto", "float32", "int8", "bfloat16"]
ComputePrecision = Literal["float32", "int8", "bfloat16"]  # what `auto` resolves to
PRECISIONS: tuple[str, ...] = get_args(Precision)
