"""Training the neural English recognizer: LoRA on MiniLM-L6 + a linear head, GoEmotions.

Deterministic and resumable: every batch order derives from (seed, epoch), and
a checkpoint (trainable weights, optimizer, scheduler, RNG states, position)
is written every few hundred steps, so re-running the same command continues
where the last run stopped and ends with the same weights an uninterrupted run
would have. Thresholds are tuned on a split carved from train with a fixed
seed, for float32 and for int8; dev is only ever scored.
"""

from __future__ import annotations

import dataclasses
import random
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agent.emotion.labels import LABELS
from agent.emotion.minilm import load_minilm
from agent.emotion.minilm_files import ENCODER_PACKAGE, WordPieceTokenizer, encoder_version
from agent.emotion.neural import MODEL_NAME, ArtifactConfig, load_runner, predict_probabilities
from agent.emotion.neural_torch import EmotionNetwork
from agent.emotion.precision import ComputePrecision
from agent.training.emotion.datasets import DataFormat, Example, read_dataset
from agent.training.emotion.neural_export import (
    artifact_bytes,
    lora_tensors,
    score_split,
    tune_group_thresholds,
    tune_thresholds,
    write_metrics,
    write_thresholds,
    write_weights,
)
from agent.training.emotion.neural_loop import (
    NeuralTrainConfig,
    Split,
    Trainer,
    steps_per_epoch,
)

__all__ = ["LORA_TARGETS", "NeuralTrainConfig", "train_neural"]

# Every linear layer inside the six transformer blocks of this BERT model:
# attention query/key/value, the attention output dense and both feed-forward
# dense layers (the pooler is dropped, so "dense" matches nothing else).
LORA_TARGETS: tuple[str, ...] = ("query", "key", "value", "dense")
CHECKPOINT_FILE = "checkpoint.pt"
# The precisions an artifact carries thresholds for: float32, and int8, which `auto` serves.
TUNED_PRECISIONS: tuple[ComputePrecision, ...] = ("float32", "int8")


def train_neural(
    data_dir: Path,
    out_dir: Path,
    *,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 13,
    max_examples: int | None = None,
    artifact_dir: Path | None = None,
    checkpoint_every: int = 200,
    stop_after: int | None = None,
    num_threads: int = 2,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) on `data_dir`/{train,dev}.tsv, export the artifact, return its metrics.

    `out_dir` holds the checkpoint; the artifact goes to `artifact_dir`
    (default `out_dir/artifact`). `max_examples` keeps the first N train and
    dev examples (for smoke tests). `stop_after` ends this run after that many
    steps, leaving a checkpoint and returning `{"finished": False, ...}` — for
    time-boxed runs on a shared machine; the same call again continues.
    """
    config = NeuralTrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, max_examples=max_examples
    )
    torch.set_num_threads(num_threads)
    _seed_everything(config.seed)
    tokenizer, encoder = load_minilm(config.max_length)
    train, carved, dev = _load_splits(data_dir, config, tokenizer)
    network = _build_network(encoder, encoder.shape.hidden_size, config, train.targets)
    trainer = Trainer(network, config, steps_per_epoch=steps_per_epoch(train, config))
    checkpoint = out_dir / CHECKPOINT_FILE
    trainer.resume(checkpoint)
    finished = trainer.run(
        train,
        checkpoint,
        pad_id=tokenizer.pad_id,
        every=checkpoint_every,
        budget=stop_after,
        bar=progress,
    )
    if not finished:
        return {"finished": False, "epoch": trainer.position.epoch, "step": trainer.position.step}
    artifact_dir = artifact_dir or out_dir / "artifact"
    write_weights(
        artifact_dir, _artifact_config(config), lora_tensors(network.encoder), network.head
    )
    metrics = _evaluate(artifact_dir, carved, dev, config)
    metrics.update(
        model=MODEL_NAME,
        finished=True,
        command=command or shlex.join([sys.executable, *sys.argv]),
        config=dataclasses.asdict(config),
        data={"dir": str(data_dir), "train": len(train.texts)},
        training_seconds=round(trainer.position.elapsed, 1),
        parameters={
            "trainable": sum(p.numel() for p in network.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in network.parameters()),
        },
        artifact_bytes=artifact_bytes(artifact_dir),
    )
    write_metrics(artifact_dir, metrics)
    return metrics


def _artifact_config(config: NeuralTrainConfig) -> ArtifactConfig:
    return ArtifactConfig(
        encoder_package=ENCODER_PACKAGE,
        encoder_version=encoder_version(),
        labels=LABELS,
        max_length=config.max_length,
        pooling="mean",
        lora_rank=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_targets=LORA_TARGETS,
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_splits(
    data_dir: Path, config: NeuralTrainConfig, tokenizer: WordPieceTokenizer
) -> tuple[Split, Split, Split]:
    """Train minus the carved split, the carved split (fixed seed), and dev."""
    train = read_dataset(data_dir / "train.tsv", DataFormat.GOEMOTIONS).examples
    dev = read_dataset(data_dir / "dev.tsv", DataFormat.GOEMOTIONS).examples
    if config.max_examples is not None:
        train, dev = train[: config.max_examples], dev[: config.max_examples]
    order = np.random.default_rng(config.carve_seed).permutation(len(train))
    size = max(1, round(len(train) * config.carve_fraction))
    carved = [train[i] for i in sorted(order[:size])]
    kept = [train[i] for i in sorted(order[size:])]
    return (
        _tokenize(kept, tokenizer),
        _tokenize(carved, tokenizer),
        _tokenize(dev, tokenizer),
    )


def _tokenize(examples: Sequence[Example], tokenizer: WordPieceTokenizer) -> Split:
    texts = tuple(example.text for example in examples)
    targets = torch.zeros(len(examples), len(LABELS))
    for row, example in enumerate(examples):
        for label in example.labels:
            targets[row, LABELS.index(label)] = 1.0
    return Split(
        texts=texts,
        labels=tuple(example.labels for example in examples),
        input_ids=tuple(tuple(ids) for ids in tokenizer.encode(texts)),
        targets=targets,
    )


def _build_network(
    encoder: nn.Module, hidden: int, config: NeuralTrainConfig, targets: torch.Tensor
) -> EmotionNetwork:
    """LoRA-wrapped encoder plus a head whose biases start at the labels' log prior odds.

    Starting from the prior keeps the first steps from spending themselves on
    learning that most labels are rare.
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(LORA_TARGETS),
    )
    network = EmotionNetwork(get_peft_model(encoder, lora), hidden, len(LABELS))
    prior = targets.mean(dim=0).clamp(1e-4, 1 - 1e-4)
    with torch.no_grad():
        network.head.bias.copy_(torch.log(prior / (1 - prior)))
    return network


def _evaluate(
    artifact_dir: Path, carved: Split, dev: Split, config: NeuralTrainConfig
) -> dict[str, Any]:
    """Tune thresholds on the carved split with the exported network, in float32 and in
    int8 (whose readings move by a few hundredths), then score both splits in each."""
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    scores: dict[str, Any] = {}
    for precision in TUNED_PRECISIONS:
        tokenizer, run = load_runner(artifact_dir, precision=precision)
        carved_p = predict_probabilities(tokenizer, run, carved.texts)[0]
        dev_p = predict_probabilities(tokenizer, run, dev.texts)[0]
        tuned = tables[precision] = (
            tune_thresholds(carved_p, carved.targets.numpy()),
            tune_group_thresholds(carved_p, carved.labels),
        )
        splits = {
            "carved": score_split(carved_p, carved.labels, *tuned),
            "dev": score_split(dev_p, dev.labels, *tuned),
        }
        scores.update(splits if precision == "float32" else {precision: splits})
    write_thresholds(
        artifact_dir, tables, tuned_on=f"train split carved with seed {config.carve_seed}"
    )
    return scores
