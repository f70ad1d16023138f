"""After training: threshold tuning, scoring and writing the shipped artifact.

Thresholds are tuned on the split carved from train and only then applied to
dev, so the dev figures are honest. Scoring runs on the network rebuilt from
the exported files, so the metrics describe exactly what ships.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from agent.emotion.labels import LABELS
from agent.emotion.neural import (
    CONFIG_FILE,
    GROUPS,
    METRICS_FILE,
    THRESHOLDS_FILE,
    WEIGHTS_FILE,
    ArtifactConfig,
    decide,
    group_probabilities,
)
from agent.training.emotion.scoring import EKMAN_CLASSES, score_space, to_ekman

__all__ = [
    "THRESHOLD_GRID",
    "artifact_bytes",
    "lora_tensors",
    "score_split",
    "tune_group_thresholds",
    "tune_thresholds",
    "write_metrics",
    "write_thresholds",
    "write_weights",
]

THRESHOLD_GRID: np.ndarray = np.round(np.arange(0.05, 0.951, 0.05), 2)


def tune_thresholds(probabilities: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per class, the grid threshold that maximises that class's F1 (lowest on ties)."""
    predicted = probabilities[None, :, :] >= THRESHOLD_GRID[:, None, None]
    truth = gold.astype(bool)[None, :, :]
    tp = (predicted & truth).sum(axis=1)
    fp = (predicted & ~truth).sum(axis=1)
    fn = (~predicted & truth).sum(axis=1)
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    best: np.ndarray = THRESHOLD_GRID[f1.argmax(axis=0)].astype(np.float32)
    return best


def score_split(
    probabilities: np.ndarray,
    gold: Sequence[Sequence[str]],
    thresholds: np.ndarray,
    group_thresholds: np.ndarray,
) -> dict[str, object]:
    """Fine F1 of the thresholded labels, Ekman-7 F1 of the thresholded groups."""
    predicted = [[LABELS[i] for i in ids] for ids in decide(probabilities, thresholds)]
    fine = score_space("fine", gold, predicted)
    groups = decide(group_probabilities(probabilities), group_thresholds)
    ekman = score_space(
        "ekman",
        [to_ekman(labels) for labels in gold],
        [[GROUPS[i] for i in ids] for ids in groups],
        classes=EKMAN_CLASSES,
    )
    return {
        "examples": len(gold),
        "macro_f1": fine.macro_f1,
        "micro_f1": fine.micro_f1,
        "ekman_macro_f1": ekman.macro_f1,
        "ekman_micro_f1": ekman.micro_f1,
        "per_class_f1": {c.label: c.f1 for c in fine.per_class},
        "ekman_per_class_f1": {c.label: c.f1 for c in ekman.per_class},
    }


def lora_tensors(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA A and B matrices of a peft-wrapped encoder, keyed by the plain layer name."""
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    tensors: dict[str, torch.Tensor] = {}
    for name, module in encoder.named_modules():
        if isinstance(module, LoraLayer):
            layer = name.removeprefix(prefix)
            tensors[f"lora.{layer}.A"] = cast(torch.Tensor, module.lora_A["default"].weight)
            tensors[f"lora.{layer}.B"] = cast(torch.Tensor, module.lora_B["default"].weight)
    return tensors


def write_weights(
    directory: Path, config: ArtifactConfig, lora: Mapping[str, torch.Tensor], head: nn.Linear
) -> None:
    """config.json and the fp16 LoRA + head tensors: everything but thresholds and metrics."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {**lora, "head.weight": head.weight, "head.bias": head.bias}
    save_file(
        {key: value.detach().to(torch.float16).contiguous() for key, value in tensors.items()},
        directory / WEIGHTS_FILE,
    )
    _write_json(directory / CONFIG_FILE, config.as_dict())


def tune_group_thresholds(probabilities: np.ndarray, gold: Sequence[Sequence[str]]) -> np.ndarray:
    """Per Ekman group, the threshold on its noisy-or probability that maximises its F1."""
    truth = np.array([[group in to_ekman(labels) for group in GROUPS] for labels in gold])
    return tune_thresholds(group_probabilities(probabilities), truth.astype(np.float32))


def write_thresholds(
    directory: Path, tables: Mapping[str, tuple[np.ndarray, np.ndarray]], tuned_on: str
) -> None:
    """float32's per-label and per-group thresholds at the top; each other precision's
    (int8's: its readings move by a few hundredths) under its own name."""

    def table(thresholds: np.ndarray, group_thresholds: np.ndarray) -> dict[str, object]:
        return {
            "thresholds": _rounded(LABELS, thresholds),
            "ekman": _rounded(GROUPS, group_thresholds),
        }

    others = {name: table(*tuned) for name, tuned in tables.items() if name != "float32"}
    _write_json(
        directory / THRESHOLDS_FILE,
        {"tuned_on": tuned_on, **table(*tables["float32"]), **others},
    )


def _rounded(names: Sequence[str], thresholds: np.ndarray) -> dict[str, float]:
    return {name: round(float(t), 2) for name, t in zip(names, thresholds, strict=True)}


def write_metrics(directory: Path, metrics: Mapping[str, object]) -> None:
    _write_json(directory / METRICS_FILE, metrics)


def artifact_bytes(directory: Path) -> int:
    """Size of the files the runtime loads (the metrics file is documentation)."""
    names = (CONFIG_FILE, WEIGHTS_FILE, THRESHOLDS_FILE)
    return sum((directory / name).stat().st_size for name in names)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n", encoding="utf-8")
