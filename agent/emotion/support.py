"""Reading customer-support text: what a general emotion model gets wrong there, set right.

The shipped models learnt from Reddit comments (GoEmotions) and Weibo posts (SMP2020);
customers write otherwise, and a wrong reading sends a turn to the wrong policy. From
the cues in the words (`support_cues`), `read_for_support` corrects a model's reading:

- strong or rare words the models saw too seldom ("livid", "气炸了") and disgust in
  Chinese, whose training data has no disgust class: the cued label is present with at
  least the cue's strength, and the model's labels of other groups are halved;
- worry read as sadness: worry words are fear;
- irony about a bad event ("Great, the app crashed again.") and thanks with a complaint
  ("Thanks, but it still doesn't work."): the praise and the thanks do not count, the
  complaint does;
- thanks beside a complaint is politeness, not gratitude;
- a plain question or request with no cue ("请问怎么修改收货地址") is neutral, whatever
  the model read into it; so is one that only adds thanks.

With no cue and no request, the model's reading stands. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.emotion.base import noted
from agent.emotion.labels import EKMAN, EKMAN_OF, LABELS, NEUTRAL, reading_from
from agent.emotion.support_cues import SupportCues
from agent.values import EmotionReading

__all__ = ["SUPPORT_SUFFIX", "marked", "read_for_support", "with_group"]

SUPPORT_SUFFIX = "+support"
_OTHER_GROUPS = 0.5  # what a model's label keeps when cues point to another group
_CONTRADICTED = 0.2  # what praise and thanks keep when the message complains
_POSITIVE = frozenset(EKMAN["joy"])
_POLITE = frozenset(("gratitude",))
_IRONY = 0.8
_LET_DOWN = 0.6


def read_for_support(reading: EmotionReading, cues: SupportCues) -> EmotionReading:
    """`reading` corrected by the `cues` of its text (see the module docstring)."""
    labels = dict(cues.labels)
    contradicted: frozenset[str] = frozenset()
    if cues.ironic or cues.complains:
        labels = {label: s for label, s in labels.items() if label not in _POSITIVE}
        labels["annoyance"] = max(labels.get("annoyance", 0.0), _IRONY)
        if cues.complains:
            labels["disappointment"] = max(labels.get("disappointment", 0.0), _LET_DOWN)
        contradicted = _POSITIVE
    elif cues.negative and not cues.fixed:
        labels = {label: s for label, s in labels.items() if label not in _POLITE}
    if cues.request and set(labels) <= _POLITE:
        return _neutral(reading)
    if not labels:
        return reading
    return _with_cues(reading, labels, contradicted)


def with_group(reading: EmotionReading, group: str, strength: float) -> EmotionReading:
    """`reading` turned to Ekman `group`: its strongest label of the group (the group's own
    label when it has none) present with at least `strength`, the other groups halved."""
    if group == NEUTRAL:
        return _neutral(reading)
    label = max(EKMAN[group], key=reading.score)
    return _with_cues(reading, {label: strength}, frozenset())


def _with_cues(
    reading: EmotionReading, cues: Mapping[str, float], contradicted: frozenset[str]
) -> EmotionReading:
    cued_groups = {EKMAN_OF[label] for label in cues}
    scores = dict(reading.scores)
    for label in LABELS:
        if label in contradicted:
            scores[label] = scores.get(label, 0.0) * _CONTRADICTED
        elif EKMAN_OF[label] not in cued_groups:
            scores[label] = scores.get(label, 0.0) * _OTHER_GROUPS
    for label, strength in cues.items():
        scores[label] = max(scores.get(label, 0.0), strength)
    kept = [
        label
        for label in reading.present()
        if label != NEUTRAL and EKMAN_OF[label] in cued_groups and label not in contradicted
    ]
    present = tuple(dict.fromkeys([*cues, *kept]))
    groups = tuple(group for group in EKMAN if group in {EKMAN_OF[label] for label in present})
    return reading_from(
        scores, model=marked(reading.model), labels=present, groups=groups if reading.groups else ()
    )


def _neutral(reading: EmotionReading) -> EmotionReading:
    """A plain request: whatever the model read into it, nothing is felt."""
    scores = {label: score * _OTHER_GROUPS for label, score in reading.scores.items()}
    scores[NEUTRAL] = max(reading.scores.get(NEUTRAL, 0.0), 0.9)
    return reading_from(
        scores,
        model=marked(reading.model),
        labels=(NEUTRAL,),
        groups=(NEUTRAL,) if reading.groups else (),
    )


def marked(model: str) -> str:
    """A model's name with the support reading noted."""
    return noted(model, SUPPORT_SUFFIX)
