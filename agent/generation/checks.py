"""Checks the LLM generators' settings share, each failure a `ConfigError` that names the fix."""

from __future__ import annotations

import math
from collections.abc import Mapping

from agent.errors import ConfigError

__all__ = ["require_positive", "require_temperature"]


def require_positive(owner: str, values: Mapping[str, float]) -> None:
    """Every value a positive finite number: a zero or infinite timeout would never fire."""
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{owner} {name} must be a positive finite number, got {value}")


def require_temperature(owner: str, temperature: float) -> None:
    if not 0 <= temperature <= 2:
        raise ConfigError(
            f"{owner} temperature must be between 0 and 2, got {temperature}; "
            "use 0 for greedy decoding"
        )
