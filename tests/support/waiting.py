"""Waiting for a condition in tests, bounded so a bug fails instead of hanging."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Return once `condition()` holds; fail after `within` seconds."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")
