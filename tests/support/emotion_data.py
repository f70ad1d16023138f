"""Tiny labelled emotion files written by the tests, in each format the readers take."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SUPPORT_ROWS", "write_goemotions", "write_smp2020", "write_support"]

# A few unambiguous sentences per class; the numbers make each row distinct.
_ENGLISH = {
    17: "I am so happy and delighted today",  # joy
    2: "I am furious, this makes me so angry",  # anger
    25: "I feel so sad and lonely tonight",  # sadness
    14: "I am scared, this is terrifying",  # fear
    27: "The meeting is at three in room four",  # neutral
}
_CHINESE = {
    "happy": "今天好开心，哈哈哈",
    "angry": "气死我了，太过分了",
    "sad": "我好难过，一直在哭",
    "fear": "好害怕，不敢睡觉",
    "surprise": "没想到啊，太意外了",
    "neutral": "会议在下午三点召开",
}


def write_goemotions(folder: Path, *, per_class: int = 8) -> Path:
    """`folder`/train.tsv and dev.tsv in the GoEmotions layout (text, label ids, id)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        rows = [
            f"{text} {n}\t{label}\t{split}{label}x{n}"
            for n in range(per_class)
            for label, text in _ENGLISH.items()
        ]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def write_smp2020(folder: Path, *, per_class: int = 6) -> Path:
    """`folder`/train.tsv and dev.tsv in the SMP2020-EWECT layout (text, label, id)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        rows = [
            f"{text}{n}\t{label}\t{split}{n}"
            for n in range(per_class)
            for label, text in _CHINESE.items()
        ]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


# Support messages the lexicon reads right, with their Ekman groups and language.
SUPPORT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("I am furious, this is outrageous", "anger", "en"),
    ("Thank you so much, I am so happy", "joy", "en"),
    ("I am scared and worried about my account", "fear,sadness", "en"),
    ("气死我了，太过分了", "anger", "zh"),
    ("谢谢，太开心了", "joy", "zh"),
)


def write_support(path: Path) -> Path:
    """A support TSV: the header, then `SUPPORT_ROWS`."""
    rows = ["text\tlabels\tlanguage", *("\t".join(row) for row in SUPPORT_ROWS)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
