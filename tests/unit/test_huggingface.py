"""Any Hugging Face classifier as an emotion model: a tiny random BERT built here, no network."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from agent.emotion.base import EmotionModel
from agent.emotion.batching import MicroBatcher
from agent.emotion.huggingface import HuggingFaceRecognizer, map_labels
from agent.errors import ConfigError

WORDS = (
    "i", "am", "so", "happy", "sad", "angry", "this", "is", "great", "terrible", "order",
    "where", "my", "the", "you", "我", "很", "生", "气",
)  # fmt: skip


def build(directory: Path, labels: Mapping[int, str], *, problem_type: str | None = None) -> Path:
    """A randomly initialised two-layer BERT and a word-level tokenizer, saved to `directory`."""
    torch.manual_seed(0)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        id2label=dict(labels),
        label2id={name: index for index, name in labels.items()},
        problem_type=problem_type,
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


EKMAN_LIKE = {0: "Happy", 1: "angry", 2: "SAD", 3: "no_emotion", 4: "surprise", 5: "Fear"}


@pytest.fixture(scope="module")
def single_label(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("single"), EKMAN_LIKE)


def test_a_local_model_reads_batches_in_our_label_space(single_label: Path) -> None:
    model = HuggingFaceRecognizer.load(single_label, local_files_only=True)
    texts = ["i am so happy", "where is my order", "我很生气", ""]
    readings = model.predict(texts)
    assert len(readings) == 4
    for reading in readings:
        assert set(reading.scores) >= {"joy", "anger", "sadness", "neutral", "surprise", "fear"}
        assert len(reading.scores) == 28
        assert sum(reading.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert reading.scores["love"] == 0.0  # the model has no such label
        assert reading.dominant in {"joy", "anger", "sadness", "neutral", "surprise", "fear"}
        assert reading.labels == ()  # single-label: present() is the dominant
        assert reading.model == f"hf:{single_label.name}"
    assert model.predict([]) == []
    assert [r.scores for r in model.predict(texts[:1])] == [readings[0].scores]


async def test_it_is_an_emotion_model_and_batches(single_label: Path) -> None:
    model: EmotionModel = HuggingFaceRecognizer.load(
        single_label, local_files_only=True, name="tiny"
    )
    async with MicroBatcher(model) as batcher:
        readings = await batcher.read_batch(["this is great", "i am so sad"])
    assert [r.model for r in readings] == ["tiny", "tiny"]


def test_multi_label_models_get_a_sigmoid_and_a_decision(tmp_path: Path) -> None:
    labels = {0: "joy", 1: "love", 2: "gratitude", 3: "neutral"}
    path = build(tmp_path, labels, problem_type="multi_label_classification")
    model = HuggingFaceRecognizer.load(path, local_files_only=True, threshold=0.0)
    (reading,) = model.predict(["i am so happy"])
    values = [reading.scores[label] for label in labels.values()]
    assert all(0.0 < v < 1.0 for v in values)
    assert sum(values) != pytest.approx(1.0)
    assert set(reading.labels) == set(labels.values())  # threshold 0: every label present
    strict = HuggingFaceRecognizer.load(path, local_files_only=True, threshold=1.0)
    assert strict.predict(["i am so happy"])[0].present() == (reading.dominant,)


def test_a_custom_mapping_covers_unknown_names(tmp_path: Path) -> None:
    path = build(tmp_path, {0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ConfigError, match=r"LABEL_0.*label_map"):
        HuggingFaceRecognizer.load(path, local_files_only=True)
    model = HuggingFaceRecognizer.load(
        path, local_files_only=True, label_map={"LABEL_0": "joy", "LABEL_1": "sadness"}
    )
    (reading,) = model.predict(["this is terrible"])
    assert reading.scores["joy"] + reading.scores["sadness"] == pytest.approx(1.0, abs=1e-5)


def test_label_mapping_rules() -> None:
    assert map_labels({0: "joy", 1: "Happiness", 2: "scared", 3: "Others", 4: "love"}) == (
        "joy",
        "joy",
        "fear",
        "neutral",
        "love",
    )
    assert map_labels({0: "admiration", 1: "disgust"}) == ("admiration", "disgust")
    assert map_labels({0: "pos"}, {"POS": "optimism"}) == ("optimism",)
    with pytest.raises(ConfigError, match="not GoEmotions labels"):
        map_labels({0: "joy"}, {"joy": "happiness"})
    with pytest.raises(ConfigError, match=r"\['pos', 'neg'\]"):
        map_labels({0: "pos", 1: "neg", 2: "joy"})
    with pytest.raises(ConfigError, match="no id2label"):
        map_labels({})


def test_a_missing_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        HuggingFaceRecognizer.load(tmp_path / "nowhere", local_files_only=True)
