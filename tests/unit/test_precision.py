"""The neural recognizer's number format: explicit settings are obeyed, auto follows the CPU."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from agent.emotion import precision
from agent.emotion.precision import dtype_for, native_bfloat16


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    file = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "_CPUINFO", file)
    monkeypatch.setattr(sys, "platform", "linux")
    native_bfloat16.cache_clear()
    yield file
    native_bfloat16.cache_clear()


def test_explicit_precisions_are_obeyed() -> None:
    assert dtype_for("float32") is torch.float32
    assert dtype_for("bfloat16") is torch.bfloat16


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", torch.bfloat16),
        ("fpu sse2 avx2 amx_bf16 amx_tile", torch.bfloat16),
        ("fpu sse2 avx2 avx512f avx512_vnni", torch.float32),
    ],
)
def test_auto_uses_bfloat16_only_where_the_cpu_computes_it(
    cpuinfo: Path, flags: str, expected: torch.dtype
) -> None:
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="ascii")
    assert dtype_for("auto") is expected


def test_auto_falls_back_to_float32_without_cpuinfo(cpuinfo: Path) -> None:
    assert not cpuinfo.exists()
    assert dtype_for("auto") is torch.float32
