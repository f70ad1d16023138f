"""The number format the neural recognizer computes in.

bfloat16 halves the work of every matrix product on CPUs that have native
bfloat16 instructions (AVX512-BF16, AMX) and measured no loss that matters on
GoEmotions dev (docs/models.md); on CPUs without them it is slower than
float32, so ``auto`` picks it only where the instructions exist.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

__all__ = ["PRECISIONS", "Precision", "dtype_for", "native_bfloat16"]

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_CPUINFO = Path("/proc/cpuinfo")


@cache
def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (read from /proc/cpuinfo on Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        text = _CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return not _BF16_FLAGS.isdisjoint(line.split(":", 1)[-1].split())
    return False


def dtype_for(precision: Precision) -> torch.dtype:
    """The torch dtype a precision setting means on this machine.

    torch is imported here, not at the top: the CLI reads `PRECISIONS` and
    must not load torch before it has set up OpenMP.
    """
    import torch

    if precision == "auto":
        return torch.bfloat16 if native_bfloat16() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32
