"""The optimisation loop of the neural trainer: settings, batches, steps, checkpoints.

Every batch order derives from (seed, epoch) and every checkpoint carries the
trainable weights, optimizer, scheduler, RNG states and position, so a resumed
run ends with the weights an uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from agent.emotion.minilm_files import pad_batch
from agent.emotion.neural_torch import EmotionNetwork
from agent.errors import ConfigError

__all__ = [
    "NeuralTrainConfig",
    "Position",
    "Split",
    "Trainer",
    "epoch_batches",
    "make_batch",
    "steps_per_epoch",
]

_POOL = 50  # batches per length-sorting pool


@dataclass(frozen=True, slots=True, kw_only=True)
class NeuralTrainConfig:
    """Everything that decides the trained weights; a checkpoint resumes only under the same."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 13
    max_examples: int | None = None
    max_length: int = 64
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    carve_fraction: float = 0.1
    carve_seed: int = 20200

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("epochs, batch size and learning rate must be positive")
        if self.max_examples is not None and self.max_examples < 20:
            raise ConfigError("max_examples must be at least 20 (or None for all)")
        if not 0.0 < self.carve_fraction < 0.5:
            raise ConfigError("carve_fraction must be between 0 and 0.5")


@dataclass(frozen=True, slots=True)
class Split:
    """Tokenized examples: token id lists and a multi-hot target matrix."""

    texts: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    input_ids: tuple[tuple[int, ...], ...]
    targets: torch.Tensor


@dataclass(slots=True)
class Position:
    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0


def steps_per_epoch(train: Split, config: NeuralTrainConfig) -> int:
    return math.ceil(len(train.texts) / config.batch_size)


def epoch_batches(train: Split, config: NeuralTrainConfig, epoch: int) -> list[np.ndarray]:
    """This epoch's batches: shuffled, length-bucketed within pools, in shuffled order.

    Sorting by length inside pools of `_POOL` batches halves the padding on
    GoEmotions (a random batch pads to ~37 tokens, a bucketed one to ~20) and
    so nearly halves the time per step; the shuffles keep batches varied.
    Everything derives from (seed, epoch), so a resumed run sees the same batches.
    """
    rng = np.random.default_rng([config.seed, epoch])
    order = rng.permutation(len(train.texts))
    lengths = np.array([len(ids) for ids in train.input_ids])
    pool = config.batch_size * _POOL
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        rows = order[start : start + pool]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batches.extend(np.array_split(rows, math.ceil(len(rows) / config.batch_size)))
    return [batches[i] for i in rng.permutation(len(batches))]


def make_batch(split: Split, rows: np.ndarray, pad_id: int) -> tuple[torch.Tensor, ...]:
    """Pad to the longest sequence in this batch only (dynamic padding)."""
    input_ids, mask = pad_batch([split.input_ids[i] for i in rows], pad_id)
    return torch.from_numpy(input_ids), torch.from_numpy(mask), split.targets[torch.as_tensor(rows)]


class Trainer:
    """The optimisation loop and its checkpoints; knows nothing of thresholds or export."""

    def __init__(
        self, network: EmotionNetwork, config: NeuralTrainConfig, *, steps_per_epoch: int
    ) -> None:
        self.network = network
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.position = Position()
        self.parameters = {n: p for n, p in network.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(
            self.parameters.values(), lr=config.lr, weight_decay=config.weight_decay
        )
        total = steps_per_epoch * config.epochs
        warmup = round(total * config.warmup_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, functools.partial(_warmup_then_decay, warmup=warmup, total=total)
        )
        self.loss = nn.BCEWithLogitsLoss()

    def run(
        self,
        train: Split,
        checkpoint: Path,
        *,
        pad_id: int,
        every: int,
        budget: int | None,
        bar: bool,
    ) -> bool:
        """Train to the end (True) or until `budget` steps were taken in this run (False)."""
        taken = 0
        self.network.train()
        while self.position.epoch < self.config.epochs:
            epoch = self.position.epoch
            batches = epoch_batches(train, self.config, epoch)
            progress = tqdm(
                total=self.steps_per_epoch,
                initial=self.position.step,
                desc=f"epoch {epoch + 1}/{self.config.epochs}",
                disable=not bar,
                dynamic_ncols=True,
            )
            with progress:
                while self.position.step < self.steps_per_epoch:
                    if budget is not None and taken >= budget:
                        self.save(checkpoint)
                        return False
                    loss = self._step(make_batch(train, batches[self.position.step], pad_id))
                    taken += 1
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss:.4f}")
                    if self.position.step % every == 0:
                        self.save(checkpoint)
            self.position.epoch, self.position.step = epoch + 1, 0
            self.save(checkpoint)
        return True

    def _step(self, batch: tuple[torch.Tensor, ...]) -> float:
        began = time.perf_counter()
        input_ids, mask, targets = batch
        loss = self.loss(self.network(input_ids, mask), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters.values(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.position.step += 1
        self.position.elapsed += time.perf_counter() - began
        return float(loss.detach())

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically: a crash mid-write leaves the previous one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "config": dataclasses.asdict(self.config),
            "position": dataclasses.asdict(self.position),
            "trainable": {n: p.detach().clone() for n, p in self.parameters.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(),
        }
        partial = path.with_suffix(".tmp")
        torch.save(state, partial)
        os.replace(partial, path)

    def resume(self, path: Path) -> None:
        """Continue from `path` if it exists; refuse one written under other settings."""
        if not path.is_file():
            return
        try:
            state = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            raise ConfigError(
                f"cannot read checkpoint {path}: {exc}; delete it to restart"
            ) from exc
        if state["config"] != dataclasses.asdict(self.config):
            raise ConfigError(
                f"{path} was written with other training settings; "
                "use the same settings or another output directory"
            )
        with torch.no_grad():
            for name, value in state["trainable"].items():
                self.parameters[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.position = Position(**state["position"])
        _set_rng_state(state["rng"])


def _warmup_then_decay(step: int, *, warmup: int, total: int) -> float:
    """Learning-rate factor: linear rise over `warmup` steps, then linear decay to zero."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a form `torch.load(weights_only=True)` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
