"""The CLI's emotion tools: `heartline train emotion` and `heartline eval emotion`."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Literal

from agent.emotion.catalog import models_for
from agent.emotion.precision import Precision
from agent.errors import ConfigError
from agent.training.emotion.confusion import write_confusion_png
from agent.training.emotion.datasets import DataFormat, read_dataset
from agent.training.emotion.evaluate import Evaluation, evaluate

__all__ = ["evaluate_file", "print_evaluation", "train"]

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


def evaluate_file(
    data: Path,
    *,
    data_format: DataFormat | None,
    model_name: str,
    precision: Precision = "auto",
    confusion: Path | None,
    progress: bool,
) -> Evaluation:
    """Evaluate a model on a labelled file and draw the confusion matrix.

    The PNG goes to `confusion`, by default `confusion-<format>.png` here.
    """
    dataset = read_dataset(data, data_format)
    model = models_for(model_name, precision=precision)[dataset.language]
    evaluation = evaluate(model, dataset, progress=progress)
    png = confusion or Path(f"confusion-{dataset.format.value}.png")
    write_confusion_png(
        png,
        classes=evaluation.confusion_classes,
        counts=evaluation.confusion,
        title=evaluation.confusion_title,
    )
    return dataclasses.replace(evaluation, confusion_png=png)


def print_evaluation(evaluation: Evaluation, *, as_json: bool) -> None:
    """The report as one JSON object, or as text with a table per label space."""
    print(json.dumps(evaluation.summary()) if as_json else "\n".join(evaluation.lines()))
