"""A model trained with `heartline train emotion` is what `--model DIR` loads, as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from agent.training.emotion.chinese import train_chinese
from agent.training.emotion.neural import train_neural
from tests.support.cli import heartline, serving
from tests.support.emotion_data import write_goemotions, write_smp2020

_NEURAL_NAME = "minilm-goemotions-v1"
_CHINESE_NAME = "smp2020-chinese-v1"


@pytest.fixture(scope="module")
def english(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("english")
    data = write_goemotions(root / "data")
    out = root / "model"
    train_neural(data, root / "training", epochs=1, batch_size=8, artifact_dir=out, progress=False)
    return out


@pytest.fixture(scope="module")
def chinese(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chinese")
    out = root / "model"
    train_chinese(write_smp2020(root / "data"), out, progress=False)
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("model", "text", "name"),
    [("english", "I am so happy today", _NEURAL_NAME), ("chinese", "气死我了", _CHINESE_NAME)],
)
def test_emotion_reads_with_a_trained_folder(
    model: str, text: str, name: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(model)
    result = heartline("emotion", text, "--model", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    assert reading["model"] == name + "+support"  # read as support text by default
    assert len(reading["scores"]) == 28


@pytest.mark.timeout(300)
def test_eval_scores_a_trained_folder(english: Path, tmp_path: Path) -> None:
    data = write_goemotions(tmp_path / "data", per_class=2) / "dev.tsv"
    png = tmp_path / "c.png"
    result = heartline(
        "eval", "emotion", "--data", str(data), "--model", str(english), "--json",
        "--confusion", str(png),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == _NEURAL_NAME
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(300)
def test_serve_reads_with_trained_folders(english: Path, chinese: Path, tmp_path: Path) -> None:
    for folder, text, name in (
        (english, "so happy", _NEURAL_NAME),
        (chinese, "好开心", _CHINESE_NAME),
    ):
        args = ("--port", "0", "--workers", "1", "--data-dir", str(tmp_path))
        with serving(*args, "--emotion-model", str(folder)) as banner:
            chat = next(line for line in banner if line.startswith("Web chat:"))
            found = re.search(r"(http://\S+)/\?token=(\S+)", chat)
            assert found, banner
            response = httpx.post(
                f"{found[1]}/v1/emotion",
                json={"texts": [text]},
                headers={"Authorization": f"Bearer {found[2]}"},
                timeout=30,
            )
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["model"] == name + "+support"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "has no config.json"),
        ({"config.json": '{"labels": []}'}, "holds no model Heartline knows"),
        ({"config.json": "[1, 2]"}, "is not a JSON object"),
    ],
)
def test_a_folder_that_is_no_model_names_what_was_expected(
    files: dict[str, str], message: str, tmp_path: Path
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = heartline("emotion", "hello", "--model", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "heartline train emotion" in result.stderr
    assert "Traceback" not in result.stderr
