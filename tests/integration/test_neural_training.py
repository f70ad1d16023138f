"""Training the neural recognizer end to end on a tiny slice of GoEmotions.

Trains a few steps, stops, resumes from the checkpoint, exports, loads the
artifact and reads text with it; the interrupted run must end with the same
weights as an uninterrupted one. Needs `../shared/data/goemotions` beside the
repository: skipped locally without it, failed in CI (CI=true).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from agent.emotion.labels import LABELS
from agent.emotion.neural import NeuralEmotionModel
from agent.errors import ConfigError
from agent.training.emotion.neural import train_neural

SLICE = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "seed": 7, "max_examples": 100}


@pytest.fixture(scope="module")
def data_dir(shared_data: Path) -> Path:
    return shared_data / "goemotions"


@pytest.fixture(scope="module")
def interrupted(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped after two steps, then resumed to the end by the same call."""
    out = tmp_path_factory.mktemp("interrupted")
    stopped = train_neural(data_dir, out, **SLICE, stop_after=2, progress=False)
    assert stopped == {"finished": False, "epoch": 0, "step": 2}
    assert (out / "checkpoint.pt").is_file()
    train_neural(data_dir, out, **SLICE, progress=False)
    return out


@pytest.mark.timeout(300)
def test_exported_artifact_loads_and_reads(interrupted: Path) -> None:
    artifact = interrupted / "artifact"
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["finished"] is True
    assert set(metrics["dev"]["per_class_f1"]) == set(LABELS)
    assert 0.0 <= metrics["dev"]["macro_f1"] <= 1.0
    assert 0.0 <= metrics["carved"]["ekman_macro_f1"] <= 1.0
    assert 0.0 <= metrics["int8"]["dev"]["ekman_macro_f1"] <= 1.0
    assert metrics["artifact_bytes"] < 5_000_000
    thresholds = json.loads((artifact / "thresholds.json").read_text())
    assert set(thresholds["int8"]["thresholds"]) == set(LABELS)
    model = NeuralEmotionModel.load(artifact)
    assert model.precision == "int8"
    readings = model.predict(["I am so happy for you!", "", "why would you do that"])
    assert [r.model for r in readings] == [model.name] * 3
    assert all(r.dominant in r.labels for r in readings)


@pytest.mark.timeout(300)
def test_resumed_run_matches_an_uninterrupted_one(
    interrupted: Path, data_dir: Path, tmp_path: Path
) -> None:
    train_neural(data_dir, tmp_path, **SLICE, progress=False)
    resumed = load_file(interrupted / "artifact" / "weights.safetensors")
    straight = load_file(tmp_path / "artifact" / "weights.safetensors")
    assert resumed.keys() == straight.keys()
    for key, value in resumed.items():
        assert value.equal(straight[key]), key


@pytest.mark.timeout(300)
def test_checkpoint_from_other_settings_is_refused(interrupted: Path, data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="other training settings"):
        train_neural(data_dir, interrupted, **{**SLICE, "lr": 5e-4}, progress=False)
