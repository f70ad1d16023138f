"""Which texts a reading is for: people writing to customer service, or anything."""

from __future__ import annotations

from typing import Literal

__all__ = ["DOMAINS", "Domain"]

Domain = Literal["support", "general"]
DOMAINS: tuple[Domain, ...] = ("support", "general")
