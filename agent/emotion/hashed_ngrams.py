"""Hashed n-gram counts of a batch of texts, in a few numpy operations per batch.

A support head weighs a message's word and character n-grams. Cutting a text into
n-grams and hashing each one in Python costs more than the head itself (hundreds of
n-grams a message); here every n-gram is a span of one array of code points, and
every span is hashed at once with a polynomial hash over prefix sums (arithmetic
modulo 2**64, which numpy's unsigned integers do by wrapping). Kinds:

- ``word``: runs of two or more word characters, lower-cased, and runs of consecutive
  ones (``shortest``..``longest`` words);
- ``char``: characters of the lower-cased text, whitespace runs as one space (Chinese,
  written without spaces);
- ``char_wb``: characters within each lower-cased word padded by a space on each side
  (English: typos and inflections share most of them).

A row holds the counts of its text's n-grams by hashed column. The hash is
Heartline's own: stable across processes and machines, so a trained head reads the same
columns wherever it runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["Analyzer", "NGrams", "hashed_counts", "unit_rows"]

Analyzer = Literal["word", "char", "char_wb"]
_Ints = npt.NDArray[np.int64]
_Words = npt.NDArray[np.uint64]

_WORD = re.compile(r"\b\w\w+\b")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: it has an inverse modulo 2**64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))
_SPACE = ord(" ")


@dataclass(frozen=True, slots=True)
class NGrams:
    """One kind of hashed n-gram, `shortest` to `longest` long, into `n_features` columns."""

    analyzer: Analyzer
    shortest: int
    longest: int
    n_features: int

    def __post_init__(self) -> None:
        if not 1 <= self.shortest <= self.longest or self.n_features < 1:
            raise ValueError(f"not an n-gram range: {self}")


def hashed_counts(ngrams: NGrams, texts: Sequence[str]) -> sp.csr_matrix:
    """One row per text: how often its n-grams fall in each hashed column."""
    if ngrams.analyzer == "word":
        points, rows, starts, ends = _word_spans(texts, ngrams.shortest, ngrams.longest)
    else:
        points, rows, starts, ends = _char_spans(
            texts, ngrams.shortest, ngrams.longest, within_words=ngrams.analyzer == "char_wb"
        )
    width = np.uint64(ngrams.n_features)
    columns = (_span_hashes(points, starts, ends) % width).astype(np.int64)
    keys, counts = np.unique(rows * ngrams.n_features + columns, return_counts=True)
    indptr = np.concatenate(
        ([0], np.cumsum(np.bincount(keys // ngrams.n_features, minlength=len(texts))))
    )
    return sp.csr_matrix(
        (counts.astype(np.float32), keys % ngrams.n_features, indptr),
        shape=(len(texts), ngrams.n_features),
    )


def unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """`matrix` with each row scaled to unit length (an empty row stays empty)."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    lengths = np.sqrt(np.bincount(rows, matrix.data * matrix.data, minlength=matrix.shape[0]))
    lengths[lengths == 0.0] = 1.0
    scaled = (matrix.data / lengths[rows]).astype(np.float32)
    return sp.csr_matrix((scaled, matrix.indices, matrix.indptr), shape=matrix.shape)


def _code_points(text: str) -> npt.NDArray[np.uint64]:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _char_spans(
    texts: Sequence[str], shortest: int, longest: int, *, within_words: bool
) -> tuple[_Words, _Ints, _Ints, _Ints]:
    """Every window of `shortest`..`longest` characters that stays within its text (and,
    `within_words`, within one padded word: words are joined by two spaces, which no
    window within a word holds)."""
    if within_words:
        prepared = [
            " " + "  ".join(words) + " " if (words := text.lower().split()) else ""
            for text in texts
        ]
    else:
        prepared = [" ".join(text.lower().split()) for text in texts]
    points = _code_points("".join(prepared))
    owner = np.repeat(np.arange(len(texts)), [len(text) for text in prepared])
    sizes = np.arange(shortest, longest + 1)
    starts = np.tile(np.arange(len(points)), len(sizes))
    ends = starts + np.repeat(sizes, len(points))
    fits = ends <= len(points)
    starts, ends = starts[fits], ends[fits]
    valid = owner[starts] == owner[ends - 1]
    if within_words:
        doubled = np.cumsum((points[:-1] == _SPACE) & (points[1:] == _SPACE))
        doubled = np.concatenate(([0], doubled))
        valid &= doubled[ends - 1] == doubled[starts]
    return points, owner[starts[valid]], starts[valid], ends[valid]


def _word_spans(
    texts: Sequence[str], shortest: int, longest: int
) -> tuple[_Words, _Ints, _Ints, _Ints]:
    """Every run of `shortest`..`longest` consecutive words of a text, as a span of all
    the words joined by one space."""
    words = [_WORD.findall(text.lower()) for text in texts]
    flat = [word for text_words in words for word in text_words]
    owner = np.repeat(np.arange(len(texts)), [len(text_words) for text_words in words])
    lengths = np.array([len(word) for word in flat], dtype=np.int64)
    word_ends = np.cumsum(lengths + 1) - 1
    word_starts = word_ends - lengths
    rows, starts, ends = [], [], []
    for n in range(shortest, longest + 1):
        first = np.arange(max(len(flat) - n + 1, 0))
        valid = owner[first] == owner[first + n - 1]
        rows.append(owner[first[valid]])
        starts.append(word_starts[first[valid]])
        ends.append(word_ends[first[valid] + n - 1])
    return (
        _code_points(" ".join(flat)),
        np.concatenate(rows),
        np.concatenate(starts),
        np.concatenate(ends),
    )


def _span_hashes(points: _Words, starts: _Ints, ends: _Ints) -> _Words:
    """A well-mixed 64-bit hash of each span ``points[start:end]``.

    With prefix sums ``P[k] = sum(points[t] * B**-t for t < k)``, the polynomial hash
    ``sum(points[t] * B**(end-1-t))`` of a span is ``B**(end-1) * (P[end] - P[start])``.
    """
    powers, inverse = _powers(max(len(points) + 1, 1024).bit_length())
    prefix = np.concatenate(
        ([np.uint64(0)], np.cumsum(points * inverse[: len(points)], dtype=np.uint64))
    )
    hashes = powers[np.maximum(ends - 1, 0)] * (prefix[ends] - prefix[starts])
    return _mixed(hashes + (ends - starts).astype(np.uint64))


@lru_cache(maxsize=8)
def _powers(bits: int) -> tuple[_Words, _Words]:
    """``B**k`` and ``B**-k`` for k below ``2**bits``: made once per size, as texts come."""
    out: list[_Words] = []
    for base in (_BASE, _BASE_INVERSE):
        powers = np.cumprod(np.full(2**bits, base, dtype=np.uint64), dtype=np.uint64)
        powers[1:] = powers[:-1]
        powers[0] = 1
        powers.flags.writeable = False
        out.append(powers)
    return out[0], out[1]


def _mixed(hashes: _Words) -> _Words:
    """MurmurHash3's 64-bit finalizer: every input bit moves every output bit."""
    hashes = hashes ^ (hashes >> np.uint64(33))
    hashes = hashes * np.uint64(0xFF51AFD7ED558CCD)
    hashes = hashes ^ (hashes >> np.uint64(33))
    hashes = hashes * np.uint64(0xC4CEB9FE1A85EC53)
    return hashes ^ (hashes >> np.uint64(33))
