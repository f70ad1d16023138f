"""The learned policies' view of a turn: a fixed-length vector of bounded features.

`context_features` turns a `TurnContext` (and the dialogue flow's state, which
the context does not carry) into a float64 vector whose slots are named by
`FEATURE_NAMES`. Every slot lies in [-1, 1]; most in [0, 1]. The layout is part
of a persisted bandit's meaning: a bandit's state records the names it was
trained on, so changing this list makes old states refuse to load rather than
silently read the wrong slots.

The slots, in order:

- ``bias``: always 1.0, so each arm's linear model has an intercept;
- ``emotion.<group>``: this turn's score mass per Ekman-7 group (the fine
  labels summed with `agent.emotion.labels.EKMAN`), clipped to 1 because a
  multi-label model's scores need not sum to 1;
- ``emotion.valence``, ``emotion.arousal``, ``emotion.intensity`` of the reading;
- ``mood.valence`` and a one-hot ``mood.trajectory.<trajectory>`` of the
  conversation so far;
- ``history.returning``, a one-hot ``history.trend.<trend>``,
  ``history.mean_valence`` (0 when unknown) and ``history.last_session_angry``
  (1 when the latest earlier session's mood was anger);
- a one-hot ``flow.<state>`` over `FLOW_STATES`, plus ``flow.none`` when no
  state is given and ``flow.other`` for a state outside the vocabulary.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.emotion.labels import EKMAN
from agent.values import Trajectory, Trend, TurnContext

__all__ = ["FEATURE_DIM", "FEATURE_NAMES", "FLOW_STATES", "FloatArray", "context_features"]

FloatArray = npt.NDArray[np.float64]

FLOW_STATES: tuple[str, ...] = ("greet", "understand", "resolve", "confirm", "close", "escalate")

_GROUPS: tuple[str, ...] = tuple(EKMAN)

FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    *(f"emotion.{group}" for group in _GROUPS),
    "emotion.valence",
    "emotion.arousal",
    "emotion.intensity",
    "mood.valence",
    *(f"mood.trajectory.{trajectory.value}" for trajectory in Trajectory),
    "history.returning",
    *(f"history.trend.{trend.value}" for trend in Trend),
    "history.mean_valence",
    "history.last_session_angry",
    *(f"flow.{state}" for state in FLOW_STATES),
    "flow.none",
    "flow.other",
)
FEATURE_DIM = len(FEATURE_NAMES)

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def context_features(context: TurnContext, *, flow_state: str | None = None) -> FloatArray:
    """The feature vector of one turn; see the module docstring for the slots.

    `flow_state` is the dialogue flow's current state name, if the caller runs
    one; a name outside `FLOW_STATES` sets ``flow.other``.
    """
    x = np.zeros(FEATURE_DIM, dtype=np.float64)
    x[_INDEX["bias"]] = 1.0

    reading = context.emotion
    for group in _GROUPS:
        mass = sum(reading.score(label) for label in EKMAN[group])
        x[_INDEX[f"emotion.{group}"]] = min(1.0, mass)
    x[_INDEX["emotion.valence"]] = reading.valence
    x[_INDEX["emotion.arousal"]] = reading.arousal
    x[_INDEX["emotion.intensity"]] = reading.intensity

    mood = context.mood
    x[_INDEX["mood.valence"]] = mood.valence
    x[_INDEX[f"mood.trajectory.{mood.trajectory.value}"]] = 1.0

    history = context.history
    x[_INDEX["history.returning"]] = float(history.returning)
    x[_INDEX[f"history.trend.{history.trend.value}"]] = 1.0
    x[_INDEX["history.mean_valence"]] = history.mean_valence or 0.0
    if history.past_sessions and history.past_sessions[0].mood == "anger":
        x[_INDEX["history.last_session_angry"]] = 1.0

    if flow_state is None:
        x[_INDEX["flow.none"]] = 1.0
    elif flow_state in FLOW_STATES:
        x[_INDEX[f"flow.{flow_state}"]] = 1.0
    else:
        x[_INDEX["flow.other"]] = 1.0
    return x
