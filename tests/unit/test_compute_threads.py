"""Serving processes share the cores' compute threads, unless the environment says how."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.processes import limit_compute_threads


def test_the_limit_is_set_where_the_environment_is_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert limit_compute_threads(0) is True
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_omp_num_threads_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert limit_compute_threads(1) is False
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_torch_imported_afterwards_keeps_to_the_limit() -> None:
    probe = (
        "from agent.processes import limit_compute_threads\n"
        "limit_compute_threads(1)\n"
        "import torch\n"
        "print(torch.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "1"
