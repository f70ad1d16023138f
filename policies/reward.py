"""The reward a reply earns: explicit feedback and the change in the user's valence."""

from __future__ import annotations

import math

__all__ = ["reward"]


def reward(
    feedback: int | None,
    valence_before: float,
    valence_after: float | None,
    *,
    feedback_weight: float = 1.0,
    valence_weight: float = 1.0,
) -> float | None:
    """The reward of one turn, in [-1, 1], or None when there is nothing to learn from.

    Two signals, each scaled to [-1, 1]: explicit `feedback` (-1 or +1, None
    when the user gave none) as is, and the change in the user's valence from
    this turn to their next, ``(valence_after - valence_before) / 2`` (valences
    are in [-1, 1]; `valence_after` is None when there was no next turn). The
    reward is the weighted mean of the signals present, so it keeps the same
    scale whichever signals arrived; the weights set their relative importance.
    A signal with weight 0 is ignored; None when no weighted signal is present.
    """
    for name, w in (("feedback_weight", feedback_weight), ("valence_weight", valence_weight)):
        if not (math.isfinite(w) and w >= 0.0):
            raise ValueError(f"reward: {name} must be finite and ≥ 0")
    for name, v in (("valence_before", valence_before), ("valence_after", valence_after)):
        if v is not None and not -1.0 <= v <= 1.0:
            raise ValueError(f"reward: {name} must be in [-1, 1]")
    if feedback is not None and feedback not in (-1, 1):
        raise ValueError("reward: feedback must be -1, +1 or None")
    total = weights = 0.0
    if feedback is not None and feedback_weight > 0.0:
        total += feedback_weight * feedback
        weights += feedback_weight
    if valence_after is not None and valence_weight > 0.0:
        total += valence_weight * (valence_after - valence_before) / 2.0
        weights += valence_weight
    return total / weights if weights > 0.0 else None
