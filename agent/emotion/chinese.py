"""The Chinese recognizer: hashed character n-grams, TF-IDF and a linear model.

The MiniLM encoder maps most Chinese characters to ``[UNK]``, so Chinese gets
its own model, trained on SMP2020-EWECT (`agent.training.emotion.chinese`).
Its artifact is plain data, never a pickle (a pickle runs code when loaded):
``config.json`` holds the feature settings and the classes, ``model.npz`` the
IDF weights, coefficients and intercepts. Character n-grams are hashed
(`hashed_ngrams`), so no vocabulary is stored.

The six SMP2020 classes are GoEmotions labels of the same name; a reading puts
their probabilities on those labels and 0 on the other 22.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from agent.emotion.hashed_ngrams import NGrams, hashed_counts, unit_rows
from agent.emotion.labels import LABELS, NEUTRAL, reading_from
from agent.errors import ConfigError
from agent.values import EmotionReading

__all__ = ["DEFAULT_ARTIFACT", "FORMAT_VERSION", "ChineseEmotionModel", "FeatureConfig"]

DEFAULT_ARTIFACT = Path(__file__).parent / "models" / "smp2020-chinese"
FORMAT_VERSION = 2  # 2: Heartline's own n-gram hash
MODEL_NAME = "smp2020-chinese-v1"
_CONFIG = "config.json"
_ARRAYS = "model.npz"

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureConfig:
    """How a text becomes a feature vector; stored in ``config.json``.

    `max_chars` bounds the work per text: SMP2020 posts are at most ~200
    characters, so a longer text is read from its first `max_chars`.
    """

    ngram_min: int = 1
    ngram_max: int = 3
    n_features: int = 2**18
    max_chars: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.ngram_min <= self.ngram_max <= 8:
            raise ConfigError("features: need 1 <= ngram_min <= ngram_max <= 8")
        if not 2**10 <= self.n_features <= 2**24:
            raise ConfigError("features: n_features must lie in 2**10..2**24")
        if self.max_chars < 1:
            raise ConfigError("features: max_chars must be positive")

    def counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Raw n-gram counts per hash bucket, one row per text (lower-cased)."""
        ngrams = NGrams("char", self.ngram_min, self.ngram_max, self.n_features)
        return hashed_counts(ngrams, [text[: self.max_chars] for text in texts])


def tfidf(counts: sp.csr_matrix, idf: FloatArray) -> sp.csr_matrix:
    """Sublinear TF times IDF, each row scaled to unit length.

    Training and runtime both call this, so the features cannot drift apart.
    """
    weighted = counts.copy()
    weighted.data = (1.0 + np.log(weighted.data)) * idf[weighted.indices]
    return unit_rows(weighted)


class ChineseEmotionModel:
    """Six-class emotion model for Chinese text; implements `EmotionModel`.

    Probabilities are a softmax over the linear scores (the temperature and
    the per-class decision offsets tuned in training are folded into the
    stored coefficients and intercepts). A text with no characters to read
    is neutral, not the class prior.
    """

    name = MODEL_NAME

    def __init__(
        self,
        *,
        features: FeatureConfig,
        classes: Sequence[str],
        idf: FloatArray,
        coef: FloatArray,
        intercept: FloatArray,
    ) -> None:
        _check_shapes(features, classes, idf, coef, intercept)
        self.features = features
        self.classes = tuple(classes)
        self._idf = idf.astype(np.float32)
        self._coef_t = np.ascontiguousarray(coef.astype(np.float32).T)
        self._intercept = intercept.astype(np.float32)
        self._neutral = self.classes.index(NEUTRAL) if NEUTRAL in self.classes else None

    @classmethod
    def load(cls, path: Path | None = None) -> ChineseEmotionModel:
        """Load an artifact directory (default: the one shipped with Heartline)."""
        path = path or DEFAULT_ARTIFACT
        config = _read_config(path)
        arrays = _read_arrays(path)
        try:
            features = FeatureConfig(**config["features"])
            return cls(features=features, classes=config["classes"], **arrays)
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"{path}: malformed Chinese model artifact ({exc}); {_FIX}") from exc

    def save(self, path: Path, *, extra: dict[str, Any] | None = None) -> None:
        """Write ``config.json`` and ``model.npz`` to `path` (created if missing)."""
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "classes": list(self.classes),
            "features": asdict(self.features),
            **(extra or {}),
        }
        (path / _CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        np.savez_compressed(
            path / _ARRAYS,
            idf=self._idf,
            coef=self._coef_t.T.astype(np.float16),
            intercept=self._intercept,
        )

    def probabilities(self, texts: Sequence[str]) -> FloatArray:
        """Class probabilities, one row per text, columns in `classes` order."""
        counts = self.features.counts(texts)
        logits = tfidf(counts, self._idf) @ self._coef_t + self._intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs: FloatArray = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        if self._neutral is not None:
            empty = np.diff(counts.indptr) == 0
            probs[empty] = 0.0
            probs[empty, self._neutral] = 1.0
        return probs

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        """One reading per text, in order. CPU-bound; never call it on the event loop."""
        if not texts:
            return []
        return [self._reading(row) for row in self.probabilities(texts)]

    def _reading(self, row: FloatArray) -> EmotionReading:
        scores = dict.fromkeys(LABELS, 0.0)
        scores.update(zip(self.classes, row.tolist(), strict=True))
        dominant = max(scores, key=lambda label: scores[label])
        return reading_from(scores, model=self.name, labels=(dominant,))


_FIX = "retrain it with `heartline train emotion --data DIR --lang zh`"


def _read_config(path: Path) -> dict[str, Any]:
    file = path / _CONFIG
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no Chinese model at {path} ({_CONFIG} missing); {_FIX}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}; {_FIX}") from exc
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{file}: not a version-{FORMAT_VERSION} Chinese model config; {_FIX}")
    return config


def _read_arrays(path: Path) -> dict[str, FloatArray]:
    file = path / _ARRAYS
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {key: np.asarray(npz[key]) for key in ("idf", "coef", "intercept")}
    except FileNotFoundError as exc:
        raise ConfigError(f"no Chinese model at {path} ({_ARRAYS} missing); {_FIX}") from exc
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot read {file}: {exc}; {_FIX}") from exc


def _check_shapes(
    features: FeatureConfig,
    classes: Sequence[str],
    idf: FloatArray,
    coef: FloatArray,
    intercept: FloatArray,
) -> None:
    """Refuse arrays that do not fit the config, so a bad artifact fails at load."""
    if (
        not classes
        or len(set(classes)) != len(classes)
        or any(label not in LABELS for label in classes)
    ):
        raise ConfigError(f"Chinese model classes must be GoEmotions labels, got {classes!r}")
    expected = {
        "idf": (features.n_features,),
        "coef": (len(classes), features.n_features),
        "intercept": (len(classes),),
    }
    for name, array in (("idf", idf), ("coef", coef), ("intercept", intercept)):
        if array.shape != expected[name] or not np.all(np.isfinite(array)):
            raise ConfigError(
                f"Chinese model {name} must be finite with shape {expected[name]}, "
                f"got {array.shape}; {_FIX}"
            )
