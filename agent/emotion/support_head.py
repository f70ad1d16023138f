"""The support head: a linear model that names the Ekman group of a support message.

Cue words (`support_cues`) catch what is said outright; much of what customers feel is
not ("I was promised a callback within 24 hours. That was 5 days ago."). The head is a
multinomial logistic regression over what is known of a message by then: the model's
label scores, the cue-corrected scores and present labels, hashed word (English) or
character (Chinese) n-grams, and the English model's sentence embedding. It is trained
on Heartline's own support training set (`heartline train support`), one head per
language and base model, and stored as plain data (``config.json``, ``head.npz``),
never a pickle.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from agent.emotion.hashed_ngrams import Analyzer, NGrams, hashed_counts, unit_rows
from agent.emotion.labels import EKMAN, LABELS
from agent.errors import ConfigError
from agent.language import Language
from agent.values import EmotionReading

__all__ = ["HEADS_DIR", "HeadConfig", "SupportHead", "head_features"]

HEADS_DIR = Path(__file__).parent / "models" / "support"
FORMAT_VERSION = 2  # 2: Heartline's own n-gram hash (`hashed_ngrams`)
GROUPS: tuple[str, ...] = tuple(EKMAN)
_COLUMN = {label: column for column, label in enumerate(LABELS)}
_CONFIG = "config.json"
_ARRAYS = "head.npz"

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadConfig:
    """What a head reads and for which model; stored in ``config.json``."""

    language: Language
    base_model: str
    ngrams: tuple[NGrams, ...]
    embedding_size: int  # 0: the base model gives no embedding

    @property
    def size(self) -> int:
        return 3 * len(LABELS) + sum(n.n_features for n in self.ngrams) + self.embedding_size


def head_features(
    config: HeadConfig,
    texts: Sequence[str],
    read: Sequence[EmotionReading],
    corrected: Sequence[EmotionReading],
    embeddings: FloatArray | None,
) -> list[FloatArray | sp.csr_matrix]:
    """The inputs a head weighs (see the module docstring), one row per text, in blocks of
    columns: `SupportHead.probabilities` weighs each block apart, which is cheaper per call
    than joining them (training joins them with `scipy.sparse.hstack`)."""
    blocks = np.zeros((len(texts), 3, len(LABELS)), dtype=np.float32)
    for row, (r, c) in enumerate(zip(read, corrected, strict=True)):
        blocks[row, 0] = [r.scores.get(label, 0.0) for label in LABELS]
        blocks[row, 1] = [c.scores.get(label, 0.0) for label in LABELS]
        blocks[row, 2, [_COLUMN[label] for label in c.present()]] = 1.0
    dense = blocks.reshape(len(texts), 3 * len(LABELS))
    parts: list[FloatArray | sp.csr_matrix] = [dense]
    parts += [unit_rows(hashed_counts(n, texts)) for n in config.ngrams]
    if config.embedding_size:
        if embeddings is None or embeddings.shape != (len(texts), config.embedding_size):
            raise ValueError(f"the head needs {config.embedding_size}-wide embeddings")
        parts.append(embeddings.astype(np.float32))
    return parts


class SupportHead:
    """A trained head: group probabilities for feature rows."""

    def __init__(self, config: HeadConfig, coef: FloatArray, intercept: FloatArray) -> None:
        if coef.shape != (len(GROUPS), config.size) or intercept.shape != (len(GROUPS),):
            raise ConfigError(
                f"support head for {config.base_model}: weights do not fit its config"
            )
        self.config = config
        self._coef = coef
        self._intercept = intercept
        widths = [3 * len(LABELS), *(n.n_features for n in config.ngrams)]
        widths += [config.embedding_size] if config.embedding_size else []
        edges = np.cumsum([0, *widths])
        # Each block's weights laid out as its rows are multiplied: a sparse block then
        # gathers the few rows it needs instead of striding across all of `coef`.
        self._blocks = [
            np.ascontiguousarray(coef[:, start:end].T) for start, end in pairwise(edges)
        ]

    def probabilities(self, features: Sequence[FloatArray | sp.csr_matrix]) -> FloatArray:
        if len(features) != len(self._blocks):
            raise ValueError(f"the head weighs {len(self._blocks)} blocks of features")
        logits = np.tile(self._intercept, (features[0].shape[0], 1))
        for block, weights in zip(features, self._blocks, strict=True):
            logits += np.asarray(block @ weights)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        out: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        raw = {"format": FORMAT_VERSION, "groups": list(GROUPS), **_as_json(self.config)}
        (path / _CONFIG).write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
        np.savez_compressed(path / _ARRAYS, coef=self._coef, intercept=self._intercept)

    @classmethod
    def load(cls, path: Path) -> SupportHead:
        try:
            raw = json.loads((path / _CONFIG).read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT_VERSION or raw.get("groups") != list(GROUPS):
                raise ConfigError(
                    f"{path}: not a support head of format {FORMAT_VERSION}; "
                    "make it anew with `heartline train support`"
                )
            config = HeadConfig(
                language=raw["language"],
                base_model=str(raw["base_model"]),
                ngrams=tuple(_ngrams(n) for n in raw["ngrams"]),
                embedding_size=int(raw["embedding_size"]),
            )
            with np.load(path / _ARRAYS, allow_pickle=False) as arrays:
                coef = arrays["coef"].astype(np.float32)
                intercept = arrays["intercept"].astype(np.float32)
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"cannot load the support head at {path}: {exc}") from exc
        if config.language not in ("en", "zh"):
            raise ConfigError(f"{path}: unknown language {config.language!r}")
        return cls(config, coef, intercept)


_ANALYZERS: dict[str, Analyzer] = {
    "word": "word",
    "char": "char",
    "char_wb": "char_wb",
}


def _ngrams(raw: dict[str, object]) -> NGrams:
    analyzer = _ANALYZERS.get(str(raw["analyzer"]))
    if analyzer is None:
        raise ValueError(f"unknown n-gram analyzer {raw['analyzer']!r}")
    return NGrams(
        analyzer, int(str(raw["shortest"])), int(str(raw["longest"])), int(str(raw["n_features"]))
    )


def _as_json(config: HeadConfig) -> dict[str, object]:
    return {
        "language": config.language,
        "base_model": config.base_model,
        "ngrams": [
            {
                "analyzer": n.analyzer,
                "shortest": n.shortest,
                "longest": n.longest,
                "n_features": n.n_features,
            }
            for n in config.ngrams
        ],
        "embedding_size": config.embedding_size,
    }
