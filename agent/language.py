"""Per-turn language detection: enough to pick a model and a template language."""

from __future__ import annotations

from typing import Literal

__all__ = ["Language", "detect_language"]

Language = Literal["en", "zh"]


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def detect_language(text: str) -> Language:
    """`zh` when CJK ideographs make up at least a fifth of the letters, else `en`."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if _is_cjk(c))
    return "zh" if cjk * 5 >= len(letters) else "en"
