"""Hashed n-grams: the columns trained heads and the Chinese model were fitted on."""

from __future__ import annotations

import re

import numpy as np
import pytest

from agent.emotion.hashed_ngrams import (
    NGrams,
    _code_points,
    _span_hashes,
    hashed_counts,
    unit_rows,
)

_WIDE = 2**20  # few collisions: a column stands for one n-gram in these tests


def _reference(ngrams: NGrams, text: str) -> list[str]:
    """The n-grams of `text`, cut in plain Python."""
    lowered = text.lower()
    sizes = range(ngrams.shortest, ngrams.longest + 1)
    if ngrams.analyzer == "word":
        words = re.findall(r"\b\w\w+\b", lowered)
        return [" ".join(words[i : i + n]) for n in sizes for i in range(len(words) - n + 1)]
    if ngrams.analyzer == "char":
        joined = " ".join(lowered.split())
        return [joined[i : i + n] for n in sizes for i in range(len(joined) - n + 1)]
    padded = [f" {word} " for word in lowered.split()]
    return [word[i : i + n] for word in padded for n in sizes for i in range(len(word) - n + 1)]


def _column(gram: str) -> int:
    """The column of one n-gram, hashed on its own."""
    points = _code_points(gram)
    hashes = _span_hashes(points, np.array([0]), np.array([len(gram)]))
    return int(hashes[0] % np.uint64(_WIDE))


@pytest.mark.parametrize(
    "ngrams",
    [NGrams("word", 1, 2, _WIDE), NGrams("char", 1, 3, _WIDE), NGrams("char_wb", 2, 5, _WIDE)],
)
@pytest.mark.parametrize(
    "text",
    ["Thanks, but it STILL doesn't work.", "收到的外卖里有头发，太恶心了。", "  a  bb\tccc ", ""],
)
def test_counts_are_those_of_the_n_grams_cut_in_python(ngrams: NGrams, text: str) -> None:
    row = hashed_counts(ngrams, ["padding before", text, "and after"])[1]
    expected: dict[int, float] = {}
    for gram in _reference(ngrams, text):
        column = _column(gram)
        expected[column] = expected.get(column, 0.0) + 1.0
    assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)) == expected


def test_an_n_gram_hashes_alike_wherever_it_stands() -> None:
    ngrams = NGrams("char", 3, 3, _WIDE)
    first, second = hashed_counts(ngrams, ["abc", "xyzABC"])
    assert set(first.indices) < set(second.indices)


def test_the_hash_is_the_same_in_every_process() -> None:
    """Pinned: a trained head reads these columns; a new hash needs every head retrained."""
    assert hashed_counts(NGrams("word", 1, 1, _WIDE), ["hello"]).indices.tolist() == [106619]
    assert hashed_counts(NGrams("char", 2, 2, _WIDE), ["你好"]).indices.tolist() == [186344]


def test_unit_rows_scales_each_row_and_leaves_an_empty_one() -> None:
    counts = hashed_counts(NGrams("word", 1, 1, _WIDE), ["to be or not to be", ""])
    scaled = unit_rows(counts)
    lengths = np.sqrt(np.asarray(scaled.multiply(scaled).sum(axis=1)).ravel())
    assert lengths.tolist() == pytest.approx([1.0, 0.0])
    assert sorted(counts[0].data.tolist()) == [1.0, 1.0, 2.0, 2.0]


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="n-gram range"):
        NGrams("char", 3, 2, 16)
