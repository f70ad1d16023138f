"""The ``train`` extra: what training and evaluation need beyond a serving install."""

from __future__ import annotations

import importlib.util

from agent.errors import ConfigError

__all__ = ["EXTRA_MODULES", "require_extra"]

# The modules of pyproject's `train` extra, each named as it is imported.
EXTRA_MODULES: tuple[str, ...] = ("peft", "matplotlib")


def require_extra(command: str) -> None:
    """Refuse to start `command` without the extra, saying how to install it.

    Checked before the command does any work, so that a serving install fails
    in one clear line rather than with an import error half-way through.
    """
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{command} needs the training extra: pip install 'heartline[train]' "
            f"({', '.join(missing)} not installed)"
        )
