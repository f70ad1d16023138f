"""Train the Chinese model on a slice of SMP2020-EWECT, export it, load it back, read text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.emotion.chinese import ChineseEmotionModel
from agent.errors import ConfigError
from agent.training.emotion.chinese import train_chinese


@pytest.fixture(scope="module")
def data_dir(shared_data: Path) -> Path:
    return shared_data / "smp2020_ewect_usual"


def test_trains_exports_loads_and_predicts(data_dir: Path, tmp_path: Path) -> None:
    metrics = train_chinese(data_dir, tmp_path, seed=0, max_examples=1500, progress=False)

    assert metrics["train_examples"] == 1500
    assert 0.0 < metrics["train_cv"]["macro_f1"] <= 1.0
    assert metrics["dev"]["examples"] == 2000
    assert metrics["dev"]["macro_f1"] > 0.3
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == metrics
    readings = ChineseEmotionModel.load(tmp_path).predict(["气死我了！", "", "hello 😀"])
    assert len(readings) == 3
    assert all(r.model == "smp2020-chinese-v1" for r in readings)


def test_training_is_deterministic(data_dir: Path, tmp_path: Path) -> None:
    first = train_chinese(data_dir, tmp_path / "a", max_examples=600, progress=False)
    second = train_chinese(data_dir, tmp_path / "b", max_examples=600, progress=False)
    assert first["train_cv"] == second["train_cv"]
    assert first["dev"]["per_class"] == second["dev"]["per_class"]
    with np.load(tmp_path / "a" / "model.npz") as a, np.load(tmp_path / "b" / "model.npz") as b:
        assert all(np.array_equal(a[key], b[key]) for key in ("idf", "coef", "intercept"))


def test_too_few_examples_per_class_is_refused(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2 examples"):
        train_chinese(data_dir, tmp_path, max_examples=3, progress=False)
