"""The CLI's emotion tools: `heartline train emotion` and `heartline eval emotion`."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Literal

from agent.emotion.catalog import load_model, models_for
from agent.emotion.domain import Domain
from agent.emotion.precision import Precision
from agent.emotion.support_head import HEADS_DIR
from agent.errors import ConfigError
from agent.language import Language
from agent.training.emotion.confusion import write_confusion_png
from agent.training.emotion.datasets import DataFormat, read_dataset
from agent.training.emotion.evaluate import Evaluation, evaluate
from agent.training.emotion.scoring import EKMAN_CLASSES
from agent.training.emotion.support import SUPPORT_SET, SupportEvaluation, evaluate_support

__all__ = ["evaluate_file", "print_evaluation", "train", "train_support"]

_DEFAULT_OUT = {"en": Path("models/goemotions-minilm"), "zh": Path("models/smp2020-chinese")}


def train(
    data_dir: Path,
    *,
    lang: Literal["en", "zh"],
    out: Path | None,
    epochs: int,
    seed: int,
    max_examples: int | None,
) -> dict[str, Any]:
    """Train the language's model on `data_dir`; resumable; returns its metrics."""
    if not (data_dir / "train.tsv").is_file() or not (data_dir / "dev.tsv").is_file():
        raise ConfigError(
            f"{data_dir} needs train.tsv and dev.tsv (the GoEmotions layout for --lang en, "
            "the SMP2020-EWECT layout for --lang zh)"
        )
    out = out or _DEFAULT_OUT[lang]
    command = " ".join(["heartline", *sys.argv[1:]])
    if lang == "en":
        from agent.training.emotion.neural import train_neural

        # Checkpoints stay beside the model folder, never inside what ships.
        return train_neural(
            data_dir,
            out.parent / f".{out.name}-training",
            epochs=epochs,
            seed=seed,
            max_examples=max_examples,
            artifact_dir=out,
            command=command,
        )
    from agent.training.emotion.chinese import train_chinese

    return train_chinese(data_dir, out, seed=seed, max_examples=max_examples, command=command)


def train_support(data: Path | None, *, model_name: str, out: Path | None) -> list[Path]:
    """Train and save the support head of each model `model_name` uses; where each went."""
    from agent.training.emotion.support_head import SUPPORT_TRAINING_SET, train_support_head

    chinese = "chinese" if model_name == "auto" else "lexicon"
    written = []
    pairs: tuple[tuple[Language, str], ...] = (("en", "neural"), ("zh", chinese))
    for language, base in pairs:
        # As served by default: the head learns from the readings serving makes.
        model = load_model(base, precision="auto")
        head = train_support_head(model, language, data or SUPPORT_TRAINING_SET)
        path = (out or HEADS_DIR) / f"{language}-{base}"
        head.save(path)
        written.append(path)
    return written


def evaluate_file(
    data: Path | None,
    *,
    data_format: DataFormat | None,
    model_name: str,
    precision: Precision = "auto",
    domain: Domain | None = None,
    confusion: Path | None,
    progress: bool,
) -> Evaluation | SupportEvaluation:
    """Evaluate a model on a labelled file and draw the confusion matrix, or one per language.

    The PNG goes to `confusion`, by default `confusion-<format>.png` here; the
    support set's go to the same name with ``-<language>`` added. Without
    `data`, the support format reads the shipped support set. The domain is by default
    the data's: support for the support format, general for the research data sets.
    """
    data = data or _default_data(data_format)
    dataset = read_dataset(data, data_format)
    if domain is None:
        domain = "support" if dataset.format is DataFormat.SUPPORT else "general"
    models = models_for(model_name, precision=precision, domain=domain)
    png = confusion or Path(f"confusion-{dataset.format.value}.png")
    if dataset.format is DataFormat.SUPPORT:
        support = evaluate_support(data, dataset, models, progress=progress)
        drawn = []
        for score in support.languages:
            path = png.with_name(f"{png.stem}-{score.language}{png.suffix}")
            title = f"{score.model} on support, {score.language} (Ekman-7)"
            write_confusion_png(path, classes=EKMAN_CLASSES, counts=score.confusion, title=title)
            drawn.append(dataclasses.replace(score, confusion_png=path))
        return dataclasses.replace(support, languages=tuple(drawn))
    # The other formats hold one language each.
    evaluation = evaluate(models[dataset.languages[0]], dataset, progress=progress)
    write_confusion_png(
        png,
        classes=evaluation.confusion_classes,
        counts=evaluation.confusion,
        title=evaluation.confusion_title,
    )
    return dataclasses.replace(evaluation, confusion_png=png)


def _default_data(data_format: DataFormat | None) -> Path:
    if data_format is not DataFormat.SUPPORT:
        raise ConfigError(
            "heartline eval emotion needs --data FILE (only --format support has a default: "
            "the shipped support set)"
        )
    if not SUPPORT_SET.is_file():
        raise ConfigError(f"no shipped support set at {SUPPORT_SET}; pass --data FILE")
    return SUPPORT_SET


def print_evaluation(evaluation: Evaluation | SupportEvaluation, *, as_json: bool) -> None:
    """The report as one JSON object, or as text with a table per label space."""
    print(json.dumps(evaluation.summary()) if as_json else "\n".join(evaluation.lines()))
