"""Training, evaluation and simulation live apart: serving never imports them."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from agent.cli_parser import DATA_FORMATS
from agent.training.emotion.datasets import DataFormat
from agent.training.extra import EXTRA_MODULES

# What only the tools need: the `train` extra, and the training package itself.
_TOOLS_ONLY = (*EXTRA_MODULES, "agent.training")


def _imported(probe: str, roots: tuple[str, ...]) -> list[str]:
    """The modules in or under `roots` that a fresh interpreter holds after running `probe`."""
    script = f"import json, sys\n{probe}\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return [
        name
        for name in json.loads(result.stdout)
        if any(name == root or name.startswith(f"{root}.") for root in roots)
    ]


def test_the_serving_modules_import_no_tool() -> None:
    probe = (
        "import agent.app, agent.cli, agent.processes\n"
        "from agent.cli_parser import build_parser\n"
        "from agent.config import load_settings\n"
        "args = build_parser().parse_args(['serve', '--port', '0'])\n"
    )
    assert _imported(probe, (*_TOOLS_ONLY, "sklearn")) == []


def test_serving_the_shipped_models_imports_no_tool() -> None:
    """Nor scikit-learn: the models and their support heads hash n-grams themselves."""
    probe = (
        "import agent.app\n"
        "from agent.emotion.catalog import models_for\n"
        "for name in ('auto', 'open'):\n"
        "    for model in models_for(name).values(): model.predict(['hello', '你好'])\n"
    )
    assert _imported(probe, (*_TOOLS_ONLY, "sklearn")) == []


def test_the_parser_offers_every_data_format() -> None:
    assert tuple(f.value for f in DataFormat) == DATA_FORMATS


def test_the_train_extra_holds_what_only_the_tools_import() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extra = [requirement.split(">")[0] for requirement in project["optional-dependencies"]["train"]]
    assert tuple(extra) == EXTRA_MODULES
    serving = {requirement.split(">")[0].split("[")[0] for requirement in project["dependencies"]}
    assert serving.isdisjoint(EXTRA_MODULES)
