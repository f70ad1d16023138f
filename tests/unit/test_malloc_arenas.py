"""Serving processes limit glibc's malloc arenas, unless the environment already does."""

from __future__ import annotations

import sys

import pytest

from agent.processes import limit_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_arenas_are_limited_on_linux() -> None:
    assert limit_malloc_arenas() is True


def test_malloc_arena_max_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
