"""The CLI's emotion tools: `heartline train emotion` and `heartline eval emotion`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from agent.emotion.catalog import models_for
from agent.emotion.precision import Precision
from agent.errors import ConfigError
from agent.training.emotion.datasets import DataFormat, read_dataset
from agent.training.emotion.evaluate import Evaluation, evaluate, write_confusion_png

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
    """Evaluate a model on a labelled file and write the confusion matrix.

    The PNG goes to `confusion`, by default `confusion-<format>.png` here.
    """
    dataset = read_dataset(data, data_format)
    model = models_for(model_name, precision=precision)[dataset.language]
    evaluation = evaluate(model, dataset, progress=progress)
    write_confusion_png(evaluation, confusion or Path(f"confusion-{dataset.format.value}.png"))
    return evaluation


def print_evaluation(evaluation: Evaluation, *, as_json: bool) -> None:
    summary = evaluation.summary()
    if as_json:
        print(json.dumps(summary))
        return
    print(
        f"{evaluation.model} on {evaluation.data_format.value}: {evaluation.examples} examples "
        f"in {evaluation.seconds:.1f} s"
    )
    for name, space in evaluation.spaces.items():
        print(
            f"\n{name}: macro-F1 {space.macro_f1:.4f}  micro-F1 {space.micro_f1:.4f}  "
            f"weighted-F1 {space.weighted_f1:.4f}"
        )
        print(f"  {'class':<16}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}")
        for c in space.per_class:
            print(
                f"  {c.label:<16}{c.precision:>10.3f}{c.recall:>10.3f}{c.f1:>10.3f}{c.support:>10}"
            )
