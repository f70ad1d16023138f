"""`heartline init DIR`: a deployment folder, ready for `heartline serve --config`.

It holds a settings file (`heartline.toml`) that points at the deployment's own rules,
conversation flow, FAQ and persona, each a commented copy of what Heartline ships
(`agent.scaffold.texts`). Nothing is overwritten unless asked: a folder that already
holds any of the files is refused whole, before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError
from agent.scaffold import texts
from agent.scaffold.texts import RULES_FILE, SETTINGS_FILE

__all__ = ["FILES", "RULES_FILE", "SETTINGS_FILE", "DeploymentFile", "write_deployment"]


@dataclass(frozen=True, slots=True)
class DeploymentFile:
    """One file of the deployment: its name in the folder and what it is for."""

    name: str
    purpose: str
    text: Callable[[], str]
    private: bool = False  # may hold secrets: readable by its owner only


FILES: tuple[DeploymentFile, ...] = (
    DeploymentFile(
        texts.SETTINGS_FILE,
        "settings, pointing at the files below",
        texts.settings_text,
        private=True,
    ),
    DeploymentFile(texts.RULES_FILE, "the rule policy's rules", texts.rules_text),
    DeploymentFile(texts.FLOW_FILE, "the conversation flow", texts.flow_text),
    DeploymentFile(texts.FAQ_FILE, "questions and answers", texts.faq_text),
    DeploymentFile(texts.PERSONA_FILE, "an LLM's system prompt", texts.persona_text),
)


def write_deployment(folder: Path, *, force: bool = False) -> tuple[DeploymentFile, ...]:
    """Write the deployment's files into `folder` (made if missing); return them.

    Raises `ConfigError` naming the files that exist already, unless `force`.
    """
    if not force:
        present = [folder / file.name for file in FILES if (folder / file.name).exists()]
        if present:
            names = ", ".join(str(path) for path in present)
            verb = "exists" if len(present) == 1 else "exist"
            raise ConfigError(
                f"{names} already {verb}; pass --force to overwrite, or choose another folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for file in FILES:
        _write(folder / file.name, file.text(), private=file.private)
    return FILES


def _write(path: Path, text: str, *, private: bool) -> None:
    """Write `text` whole; a private file is never readable by others, not even briefly."""
    mode = 0o600 if private else 0o644
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        if private:
            os.fchmod(descriptor, mode)  # an older file keeps its mode on O_CREAT
        file.write(text)
