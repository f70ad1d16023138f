"""A serving install, without the `train` extra: it serves, and the tools say what to install.

The extra's modules are hidden from a real `heartline` process by setting them to None in
`sys.modules`, which makes both `import` and `importlib.util.find_spec` find nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.training.extra import EXTRA_MODULES
from tests.support.emotion_data import write_goemotions

_LEAN = (
    "import sys\n"
    f"for name in {EXTRA_MODULES!r}: sys.modules[name] = None\n"
    "from agent.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _lean(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LEAN, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["train emotion", "eval emotion"])
def test_a_tool_without_the_extra_says_how_to_install_it(command: str, tmp_path: Path) -> None:
    data = write_goemotions(tmp_path / "data")
    if command == "train emotion":
        args = ("--data", str(data), "--lang", "en", "--out", str(tmp_path / "model"))
    else:
        args = ("--data", str(data / "dev.tsv"), "--model", "lexicon")
    result = _lean(*command.split(), *args)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"heartline: heartline {command} needs the training extra: pip install 'heartline[train]'"
    )
    assert "Traceback" not in result.stderr


def test_reading_a_text_needs_no_extra() -> None:
    result = _lean("emotion", "I am so happy today", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "minilm-goemotions-v1+support"
