"""Emotion models by name: what `--model` and `HEARTLINE_EMOTION_MODEL` accept.

- ``auto``: the shipped models, one per language (English: the MiniLM model,
  Chinese: the SMP2020 model), the lexicon for anything else;
- ``open``: the English MiniLM model, and for Chinese the lexicon with its support head:
  no model that learnt from research-use-only data;
- ``neural``, ``chinese``, ``lexicon``: one of them for every text;
- a folder: a model written by `heartline train emotion` (English or
  Chinese), or a Hugging Face sequence-classification model, told apart by
  its files;
- anything else: a Hugging Face hub id (which needs a network on first use).

Models load on demand, never at import time; loading the neural models takes
about a second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.emotion.base import EmotionModel
from agent.emotion.domain import Domain
from agent.emotion.lexicon import LexiconRecognizer
from agent.emotion.precision import Precision
from agent.emotion.support_reader import SupportReader, shipped_heads
from agent.errors import ConfigError
from agent.language import Language

__all__ = ["BUILT_IN", "FolderKind", "folder_kind", "load_model", "models_for"]

BUILT_IN = ("auto", "open", "neural", "chinese", "lexicon")

_EXPECTED = (
    "expected a folder written by `heartline train emotion` (--lang en: config.json, "
    "weights.safetensors and thresholds.json; --lang zh: config.json and model.npz) or a "
    "Hugging Face sequence-classification model (config.json, the weights and the tokenizer)"
)


class FolderKind(StrEnum):
    """The kinds of model folder `load_model` can load."""

    NEURAL = "neural"
    CHINESE = "chinese"
    HUGGING_FACE = "huggingface"


def folder_kind(config: Mapping[str, Any]) -> FolderKind | None:
    """Which model a folder holds, from its parsed config.json.

    Each kind's config.json has keys the others lack: the neural artifact names
    its encoder and LoRA settings, the Chinese one its feature settings and
    classes, a Hugging Face one its model type or architectures. The kind's
    loader then names any of its files that is missing.
    """
    if "encoder" in config and "lora" in config:
        return FolderKind.NEURAL
    if "features" in config and "classes" in config:
        return FolderKind.CHINESE
    if "model_type" in config or "architectures" in config:
        return FolderKind.HUGGING_FACE
    return None


def load_model(name: str, *, precision: Precision = "auto") -> EmotionModel:
    """One model by name (not ``auto``, which is one model per language).

    `precision` applies to the neural English models, the ones whose speed it moves.
    """
    if name == "neural":
        from agent.emotion.neural import NeuralEmotionModel

        return NeuralEmotionModel.load(precision=precision)
    if name == "chinese":
        from agent.emotion.chinese import ChineseEmotionModel

        return ChineseEmotionModel.load()
    if name == "lexicon":
        return LexiconRecognizer()
    if Path(name).exists():
        return _load_folder(Path(name), precision=precision)
    from agent.emotion.huggingface import HuggingFaceRecognizer

    return HuggingFaceRecognizer.load(name)


def _load_folder(path: Path, *, precision: Precision) -> EmotionModel:
    if not path.is_dir():
        raise ConfigError(f"{path} is a file; {_EXPECTED}")
    kind = folder_kind(_read_config(path))
    if kind is FolderKind.NEURAL:
        from agent.emotion.neural import NeuralEmotionModel

        return NeuralEmotionModel.load(path, precision=precision)
    if kind is FolderKind.CHINESE:
        from agent.emotion.chinese import ChineseEmotionModel

        return ChineseEmotionModel.load(path)
    if kind is FolderKind.HUGGING_FACE:
        from agent.emotion.huggingface import HuggingFaceRecognizer

        return HuggingFaceRecognizer.load(path, local_files_only=True)
    raise ConfigError(f"{path} holds no model Heartline knows; {_EXPECTED}")


def _read_config(path: Path) -> Mapping[str, Any]:
    file = path / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} has no config.json; {_EXPECTED}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}; {_EXPECTED}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{file} is not a JSON object; {_EXPECTED}")
    return config


def models_for(
    name: str, *, precision: Precision = "auto", domain: Domain = "support"
) -> dict[Language, EmotionModel]:
    """The model for each language, each read for `domain` (`SupportReader`).

    ``auto`` and ``open`` name one model per language; any other name one model for both.
    In the support domain each shipped model gets the support heads made for it; a folder
    or hub model gets the cue corrections only, as the heads learnt from what the shipped
    models read (and a trained folder's readings carry a shipped model's name).
    """
    if name in ("auto", "open"):
        chinese = "chinese" if name == "auto" else "lexicon"
        english = load_model("neural", precision=precision)
        models: dict[Language, EmotionModel] = {"en": english, "zh": load_model(chinese)}
    else:
        model = load_model(name, precision=precision)
        models = {"en": model, "zh": model}
    readers: dict[int, EmotionModel] = {}
    for model in models.values():
        if id(model) not in readers:
            shipped = domain == "support" and name in BUILT_IN
            heads = shipped_heads(model.name) if shipped else {}
            readers[id(model)] = SupportReader(model, domain=domain, heads=heads)
    return {language: readers[id(model)] for language, model in models.items()}
