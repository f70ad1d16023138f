"""`heartline train support`: the support heads, from Heartline's support training set.

One head per language and base model (`agent.emotion.support_head`). The texts go
through the same path as at serving time (`read_with_cues`: placeholders out, the
model's reading, the cue corrections), so a head learns from exactly what it will see.
The target is each message's first label, the one a support agent would name first; a
second label, one a person would accept too, counts half. English reads words and the
characters within them (typos, "definately"); Chinese, written without spaces, characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from agent.emotion.base import EmotionModel
from agent.emotion.hashed_ngrams import NGrams
from agent.emotion.support_head import GROUPS, HeadConfig, SupportHead, head_features
from agent.emotion.support_reader import read_with_cues
from agent.errors import ConfigError
from agent.language import Language
from agent.training.emotion.datasets import DataFormat, Example, read_dataset

__all__ = ["SUPPORT_TRAINING_SET", "train_support_head"]

SUPPORT_TRAINING_SET = Path(__file__).parents[2] / "emotion" / "data" / "support" / "train.tsv"
_ABSENT = -1e4  # the intercept of a group the training data never names: never chosen
# Inverse regularization strengths tried, the best by five-fold cross-validation on the
# training data itself: the evaluation set never picks anything.
_STRENGTHS = (1.0, 3.0, 10.0, 30.0)
_SECOND_LABEL = 0.5
_NGRAMS: dict[Language, tuple[NGrams, ...]] = {
    "en": (NGrams("word", 1, 2, 2**14), NGrams("char_wb", 2, 5, 2**15)),
    "zh": (NGrams("char", 1, 3, 2**14),),
}


def train_support_head(
    model: EmotionModel,
    language: Language,
    data: Path = SUPPORT_TRAINING_SET,
) -> SupportHead:
    """A head for `model` on `language`'s messages of `data` (a support-format file).

    Deterministic: the folds are seeded, the solver is, and the features are hashed.
    """
    examples = read_dataset(data, DataFormat.SUPPORT).in_language(language).examples
    if len(examples) < len(GROUPS):
        raise ConfigError(f"{data}: too few {language} messages to train a support head")
    readings = read_with_cues(model, [example.text for example in examples])
    config = HeadConfig(
        language=language,
        base_model=model.name,
        ngrams=_NGRAMS[language],
        embedding_size=0 if readings.embeddings is None else readings.embeddings.shape[1],
    )
    blocks = head_features(
        config, readings.texts, readings.read, readings.corrected, readings.embeddings
    )
    features = sp.hstack([sp.csr_matrix(block) for block in blocks], format="csr")
    gold = [frozenset(GROUPS.index(label) for label in example.labels) for example in examples]
    strength = max(_STRENGTHS, key=lambda c: _held_out_accuracy(features, examples, gold, c))
    fitted = _fit(features, examples, np.arange(len(examples)), strength)
    coef = np.zeros((len(GROUPS), config.size), dtype=np.float32)
    intercept = np.full(len(GROUPS), _ABSENT, dtype=np.float32)
    if len(fitted.classes_) == 2:
        raise ConfigError(f"{data}: a support head needs more than two groups in {language}")
    for row, group in enumerate(fitted.classes_):
        coef[group] = fitted.coef_[row]
        intercept[group] = fitted.intercept_[row]
    return SupportHead(config, coef, intercept)


def _fit(
    features: sp.csr_matrix, examples: Sequence[Example], rows: np.ndarray, strength: float
) -> LogisticRegression:
    """Each message's first label as the target; its second, if any, at half the weight."""
    picked = [i for i in rows for _ in examples[i].labels[:2]]
    targets = [GROUPS.index(label) for i in rows for label in examples[i].labels[:2]]
    weights = [
        _SECOND_LABEL if k else 1.0 for i in rows for k in range(len(examples[i].labels[:2]))
    ]
    return LogisticRegression(C=strength, max_iter=5000).fit(
        features[picked], targets, sample_weight=weights
    )


def _held_out_accuracy(
    features: sp.csr_matrix,
    examples: Sequence[Example],
    gold: Sequence[frozenset[int]],
    strength: float,
) -> float:
    """Five-fold accuracy of the predicted group being one of a message's labels."""
    firsts = [GROUPS.index(example.labels[0]) for example in examples]
    right = 0
    for train, test in StratifiedKFold(5, shuffle=True, random_state=13).split(firsts, firsts):
        predicted = _fit(features, examples, train, strength).predict(features[test])
        right += sum(int(p) in gold[i] for p, i in zip(predicted, test, strict=True))
    return right / len(examples)
