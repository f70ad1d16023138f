"""The shipped neural English recognizer: loads from the package, reads plain sentences right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.emotion.labels import EKMAN, EKMAN_OF, LABELS
from agent.emotion.neural import ARTIFACT_DIR, MODEL_NAME, NeuralEmotionModel
from agent.errors import ConfigError


@pytest.fixture(scope="module", params=["float32", "int8", "bfloat16"])
def model(request: pytest.FixtureRequest) -> NeuralEmotionModel:
    loaded = NeuralEmotionModel.load(precision=request.param)
    assert loaded.precision == request.param
    return loaded


@pytest.mark.parametrize(
    ("text", "ekman"),
    [
        ("This is ridiculous, I am absolutely furious with you!", "anger"),
        ("Thank you so much, that is wonderful news!", "joy"),
        ("I love this so much, it made my day.", "joy"),
        ("I miss her so much, I have been crying all day.", "sadness"),
        ("I'm terrified that something bad is going to happen tonight.", "fear"),
        ("That is disgusting, I feel sick just looking at it.", "disgust"),
        ("The meeting is on Tuesday at 3pm in room 4.", "neutral"),
    ],
)
def test_unambiguous_sentences(model: NeuralEmotionModel, text: str, ekman: str) -> None:
    [reading] = model.predict([text])
    assert EKMAN_OF[reading.dominant] == ekman, reading.labels


def test_reading_shape(model: NeuralEmotionModel) -> None:
    [reading] = model.predict(["Thanks a lot for the quick help!"])
    assert reading.model == MODEL_NAME == model.name
    assert tuple(reading.scores) == LABELS
    assert reading.labels
    assert reading.dominant in reading.labels
    assert reading.valence > 0
    assert all(reading.scores[label] >= model.thresholds[label] for label in reading.labels)


def test_no_label_passing_its_threshold_falls_back_to_the_top_one(
    model: NeuralEmotionModel,
) -> None:
    for reading in model.predict(["ok", "hmm", "the", "Tuesday"]):
        passing = [label for label in LABELS if reading.scores[label] >= model.thresholds[label]]
        if not passing:
            assert reading.labels == (max(reading.scores, key=reading.scores.__getitem__),)


def test_batch_matches_single(model: NeuralEmotionModel) -> None:
    texts = [
        "I can't believe you did that, I'm so mad.",
        "ok",
        "What a lovely surprise, thank you! I really did not expect such a kind gift.",
        "Why is this happening to me?",
    ]
    # bfloat16 keeps 8 significant bits, and int8 quantizes each call's input on its own
    # range, so padding a row differently moves it by ~1e-3.
    tolerance = 1e-4 if model.precision == "float32" else 1e-2
    batched = model.predict(texts)
    for text, together in zip(texts, batched, strict=True):
        [alone] = model.predict([text])
        assert alone.labels == together.labels
        assert alone.dominant == together.dominant
        for label in LABELS:
            assert alone.scores[label] == pytest.approx(together.scores[label], abs=tolerance)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "!!!", "😀😀😀", "I love this 太好了 ça va très bien", "so angry " * 2000],
)
def test_odd_input_reads_without_error(model: NeuralEmotionModel, text: str) -> None:
    [reading] = model.predict([text])
    assert reading.dominant in LABELS


def test_empty_batch(model: NeuralEmotionModel) -> None:
    assert model.predict([]) == []


def test_shipped_artifact_is_small_and_complete() -> None:
    files = {path.name for path in ARTIFACT_DIR.iterdir()}
    assert {"config.json", "weights.safetensors", "thresholds.json", "metrics.json"} <= files
    assert sum(path.stat().st_size for path in ARTIFACT_DIR.iterdir()) < 5_000_000


def test_missing_artifact_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train one"):
        NeuralEmotionModel.load(tmp_path / "nowhere")


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(ARTIFACT_DIR, copy)
    return copy


def test_missing_weights_are_a_config_error(artifact_copy: Path) -> None:
    (artifact_copy / "weights.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"weights\.safetensors is missing"):
        NeuralEmotionModel.load(artifact_copy)


def test_corrupt_weights_are_a_config_error(artifact_copy: Path) -> None:
    (artifact_copy / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="cannot read"):
        NeuralEmotionModel.load(artifact_copy)


def test_malformed_thresholds_are_a_config_error(artifact_copy: Path) -> None:
    path = artifact_copy / "thresholds.json"
    raw = json.loads(path.read_text())
    raw["thresholds"]["anger"] = 1.5
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        NeuralEmotionModel.load(artifact_copy)


def test_config_with_other_labels_is_a_config_error(artifact_copy: Path) -> None:
    path = artifact_copy / "config.json"
    raw = json.loads(path.read_text())
    raw["labels"] = raw["labels"][::-1]
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="labels"):
        NeuralEmotionModel.load(artifact_copy)


def test_truncated_config_is_a_config_error(artifact_copy: Path) -> None:
    (artifact_copy / "config.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        NeuralEmotionModel.load(artifact_copy)


def test_the_ekman_groups_are_decided_on_their_own_thresholds(model: NeuralEmotionModel) -> None:
    readings = model.predict(["I'm disgusted and furious with you", "Thanks, that's lovely", "ok"])
    for reading in readings:
        assert reading.groups
        assert set(reading.groups) <= set(EKMAN)
    assert {"anger", "disgust"} & set(readings[0].groups)
    assert "joy" in readings[1].groups


def test_an_artifact_without_group_thresholds_leaves_groups_to_the_labels(
    artifact_copy: Path,
) -> None:
    path = artifact_copy / "thresholds.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    del table["ekman"], table["int8"]["ekman"]
    path.write_text(json.dumps(table), encoding="utf-8")
    (reading,) = NeuralEmotionModel.load(artifact_copy).predict(["I am so angry"])
    assert reading.groups == ()


def test_each_precision_decides_with_the_thresholds_tuned_for_it(artifact_copy: Path) -> None:
    table = json.loads((artifact_copy / "thresholds.json").read_text(encoding="utf-8"))
    float32 = NeuralEmotionModel.load(artifact_copy, precision="float32")
    int8 = NeuralEmotionModel.load(artifact_copy, precision="int8")
    assert float32.thresholds == pytest.approx(table["thresholds"])
    assert int8.thresholds == pytest.approx(table["int8"]["thresholds"])
    assert table["int8"]["thresholds"] != table["thresholds"]


def test_auto_reads_in_int8_only_where_the_artifact_is_tuned_for_it(artifact_copy: Path) -> None:
    assert NeuralEmotionModel.load(artifact_copy).precision == "int8"
    path = artifact_copy / "thresholds.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    del table["int8"]
    path.write_text(json.dumps(table), encoding="utf-8")
    assert NeuralEmotionModel.load(artifact_copy).precision == "float32"
    # int8 asked for by name reads with float32's thresholds then.
    int8 = NeuralEmotionModel.load(artifact_copy, precision="int8")
    assert int8.thresholds == pytest.approx(table["thresholds"])
