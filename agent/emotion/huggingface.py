"""Any Hugging Face sequence-classification model as an `EmotionModel`.

For users with their own fine-tune or a hub model: its label names
(`config.id2label`) are mapped into the GoEmotions label space, so policies
see one reading whatever the model. A name maps by, in order: the caller's
`label_map`, the GoEmotions name itself (which also covers Ekman-7 groups:
each is named after one of its labels), then a common alias (`happy` → joy,
`angry` → anger, `no emotion` → neutral, ...). Names are compared lower-cased
with `_` and `-` read as spaces. A model with a label none of these map is
refused with a `ConfigError` naming the labels.

Single-label models (`config.problem_type` other than
`multi_label_classification`) get a softmax and scores that sum to 1;
multi-label models get a sigmoid per label and their labels at or above
`threshold` are the reading's present `labels`. Several model labels mapped
to one of ours add up (softmax) or take the highest (sigmoid).

Loading blocks and may download (a hub id, where there is a network): do it
at start-up, not on the event loop, and wrap the model in a `MicroBatcher`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from agent.emotion.labels import LABELS, reading_from
from agent.errors import ConfigError
from agent.values import EmotionReading

__all__ = ["ALIASES", "HuggingFaceRecognizer", "map_labels"]

ALIASES: Mapping[str, str] = {
    "happy": "joy",
    "happiness": "joy",
    "joyful": "joy",
    "angry": "anger",
    "sad": "sadness",
    "afraid": "fear",
    "scared": "fear",
    "fearful": "fear",
    "surprised": "surprise",
    "disgusted": "disgust",
    "no emotion": "neutral",
    "none": "neutral",
    "other": "neutral",
    "others": "neutral",
}

_MAX_NAME_CHARS = 128


def _normal(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def map_labels(
    id2label: Mapping[int, str], label_map: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Our label for each of the model's outputs, by index.

    Raises `ConfigError` for a `label_map` value outside the GoEmotions labels
    or for model labels that nothing maps.
    """
    if not id2label:
        raise ConfigError("the model's config has no id2label: it names no labels to map")
    custom = {_normal(name): ours for name, ours in (label_map or {}).items()}
    wrong = sorted(ours for ours in custom.values() if ours not in LABELS)
    if wrong:
        raise ConfigError(
            f"label_map maps onto {wrong}, which are not GoEmotions labels; "
            f"use labels from agent.emotion.labels.LABELS"
        )
    ours: list[str] = []
    unmapped: list[str] = []
    for index in range(len(id2label)):
        name = _normal(id2label[index])
        target = custom.get(name) or (name if name in LABELS else ALIASES.get(name))
        if target is None:
            unmapped.append(id2label[index])
        else:
            ours.append(target)
    if unmapped:
        raise ConfigError(
            f"the model's labels {unmapped} have no GoEmotions label; pass a label_map "
            f"such as {{{unmapped[0]!r}: 'joy'}} naming one for each"
        )
    return tuple(ours)


class HuggingFaceRecognizer:
    """A sequence-classification model read in batches; blocking, so run it in a `MicroBatcher`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        label_map: Mapping[str, str] | None = None,
        max_length: int = 128,
        threshold: float = 0.5,
    ) -> None:
        config = model.config
        id2label = {int(index): label for index, label in (config.id2label or {}).items()}
        self._columns = map_labels(id2label, label_map)
        self._covered = frozenset(self._columns)
        self._multi_label = config.problem_type == "multi_label_classification"
        torch.nn.Module.eval(model)  # PreTrainedModel's own override is untyped
        self._model = model
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._threshold = threshold
        self._name = name[:_MAX_NAME_CHARS]

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        label_map: Mapping[str, str] | None = None,
        local_files_only: bool = False,
        name: str | None = None,
        max_length: int = 128,
        threshold: float = 0.5,
    ) -> HuggingFaceRecognizer:
        """Load a model and its tokenizer from a local directory or a hub id.

        `local_files_only` forbids any download (use it offline and in tests).
        Raises `ConfigError` when the model cannot be loaded or its labels
        cannot be mapped.
        """
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
            model = AutoModelForSequenceClassification.from_pretrained(
                source, local_files_only=local_files_only
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load a sequence-classification model from {str(source)!r}: give a "
                f"directory holding config.json, the weights and the tokenizer, or a hub id "
                f"(which needs a network unless it is cached)"
            ) from exc
        shown = name or f"hf:{Path(str(source)).name or source}"
        return cls(
            model,
            tokenizer,
            name=shown,
            label_map=label_map,
            max_length=max_length,
            threshold=threshold,
        )

    @property
    def name(self) -> str:
        return self._name

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. CPU-bound; never call it on the event loop."""
        if not texts:
            return []
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self._model(**encoded).logits.float()
        probabilities = torch.sigmoid(logits) if self._multi_label else logits.softmax(dim=-1)
        return [self._reading(row) for row in probabilities.tolist()]

    def _reading(self, probabilities: list[float]) -> EmotionReading:
        scores = dict.fromkeys(LABELS, 0.0)
        for label, p in zip(self._columns, probabilities, strict=True):
            scores[label] = max(scores[label], p) if self._multi_label else scores[label] + p
        present: tuple[str, ...] = ()
        if self._multi_label:
            found = [label for label in self._covered if scores[label] >= self._threshold]
            present = tuple(sorted(found, key=lambda label: (-scores[label], label)))
        return reading_from(scores, model=self._name, labels=present)
