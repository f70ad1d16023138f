"""Model folders by kind: the shipped artifacts, a Hugging Face config, and what is neither."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.emotion.catalog import FolderKind, folder_kind, load_model
from agent.emotion.chinese import DEFAULT_ARTIFACT, ChineseEmotionModel
from agent.emotion.neural import ARTIFACT_DIR, NeuralEmotionModel
from agent.errors import ConfigError


def _config(folder: Path) -> Any:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def test_the_shipped_artifacts_are_told_apart_by_their_config() -> None:
    assert folder_kind(_config(ARTIFACT_DIR)) is FolderKind.NEURAL
    assert folder_kind(_config(DEFAULT_ARTIFACT)) is FolderKind.CHINESE


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"model_type": "bert", "id2label": {"0": "joy"}}, FolderKind.HUGGING_FACE),
        ({"architectures": ["BertForSequenceClassification"]}, FolderKind.HUGGING_FACE),
        ({"labels": ["joy"], "max_length": 64}, None),
        ({}, None),
    ],
)
def test_other_configs(config: dict[str, Any], kind: FolderKind | None) -> None:
    assert folder_kind(config) is kind


def test_the_shipped_folders_load_by_path() -> None:
    assert isinstance(load_model(str(DEFAULT_ARTIFACT)), ChineseEmotionModel)
    assert isinstance(load_model(str(ARTIFACT_DIR), precision="float32"), NeuralEmotionModel)


def test_a_neural_config_without_its_weights_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(_config(ARTIFACT_DIR)), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"thresholds\.json is missing"):
        load_model(str(tmp_path))


def test_a_file_is_no_model_folder(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"\0")
    with pytest.raises(ConfigError, match="is a file; expected a folder written by"):
        load_model(str(file))
