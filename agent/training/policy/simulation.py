"""Simulated users with hidden emotional dynamics, to measure policies before real users do.

Pure and seeded: every draw comes from a `numpy.random.Generator` passed in,
so a seed reproduces every episode.

The user. A `Persona` hides two things from the agent: its *valence* (a number
in [-1, 1], how the user feels) and its *effects*, how much each response
strategy moves that valence. The agent sees only what production
sees: the user's text and an `EmotionReading` over the 28 GoEmotions labels.
The reading is built from the hidden valence with `reading_from`, so its
valence tracks the hidden one (up to label jitter) and its labels look like
the persona: a `trait` mix always present (an angry customer's annoyance, a
confused user's confusion), the `low` mix in proportion to how negative the
user feels, the `high` mix in proportion to how positive, neutral for the
rest. An angry customer at valence -0.6 therefore reads as about 0.9 anger,
and the shipped rules fire on it as they would in production.

Dynamics. After a reply with strategy ``s`` the hidden valence ``v`` moves by

    effect(s) * (1 - v) / 2 + noise   when effect(s) ≥ 0 (less room near content),
    effect(s) * (1 + v) / 2 + noise   otherwise (less room near despair),

clipped to [-1, 1], noise normal with the persona's `noise`. With probability
`feedback` the user also gives explicit feedback: +1 when the change was
positive, -1 otherwise. The effects are invented, not measured: they are
chosen so that on some personas the shipped rules are already about right
(anxious, happy) and on others a learner can find better (`PERSONAS` lists
which). They test whether learning works, not what real users want.

An episode (`run_episode`) is a first-time user's conversation of the
persona's length: each turn the user speaks, the policy decides, the user
responds. The user's closing message is read but not answered, so every reply
gets the reward production would give it, `policies.reward.reward(feedback,
valence_before, valence_after)` on the readings' valences. A handoff or an end
finishes the episode there (a person takes over); that turn has no reward.

The policies under test are the real stack (`policies.stack.policy_stack`):
rules-only, and rules with the bandit above the rules' replies (or, for
comparison, below them), the caller updating the bandit with every reward.

The cost of overriding: warmth is counted over all turns, not per kind of
turn, so where a warm bandit has seen little like this turn it explores
rather than defer to the rules. On a persona the rules already serve well
this costs a little reward (``bench/policy_sim.py`` measures how much).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from agent.emotion.conversation import update_mood
from agent.emotion.labels import EKMAN_OF, LABELS, NEUTRAL, VALENCE, reading_from
from agent.values import (
    Action,
    ConversationMood,
    Decision,
    EmotionReading,
    Exchange,
    HistorySummary,
    Strategy,
    TurnContext,
)
from policies.bandit_policy import DEFAULT_TONES
from policies.base import Policy
from policies.features import FloatArray, context_features
from policies.reward import reward

__all__ = [
    "MODEL_NAME",
    "PERSONAS",
    "EpisodeResult",
    "Learner",
    "Persona",
    "RandomPolicy",
    "SimulatedUser",
    "run_episode",
]

MODEL_NAME = "simulated"

Learner = Callable[[FloatArray, Strategy, float], None]
"""Called once per rewarded reply with (features of the turn, strategy served, reward)."""

# Valence bands that pick a persona's text.
_LOW, _HIGH = -0.25, 0.25
# Spread of the multiplicative (log-normal) jitter on each label's score.
_JITTER = 0.2
_BANDS = ("low", "mid", "high")


@dataclass(frozen=True, slots=True, kw_only=True)
class Persona:
    """A kind of user: how they look to the emotion model and, hidden, what helps them.

    `low`, `high` and `trait` map fine labels to weights; `low` and `high`
    each sum to 1, `low` must read negative and `high` positive; `trait` (the
    persona's signature, present at every valence) sums to at most 0.5.
    `effects` gives every strategy its effect on valence (the full mean
    change near -1, half of it at 0; see the module docstring); `start` the
    range of the initial valence; `turns` the range of the number of replies;
    `feedback` the probability of explicit feedback per reply; `texts` a few
    messages per valence band (``low``, ``mid``, ``high``).
    """

    name: str
    description: str
    low: Mapping[str, float]
    high: Mapping[str, float]
    effects: Mapping[Strategy, float]
    texts: Mapping[str, tuple[str, ...]]
    trait: Mapping[str, float] = field(default_factory=dict)
    start: tuple[float, float] = (-0.6, -0.3)
    noise: float = 0.08
    turns: tuple[int, int] = (4, 6)
    feedback: float = 0.3

    def __post_init__(self) -> None:
        for name in ("low", "high", "trait", "effects", "texts"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        where = f"persona {self.name!r}"
        for mix_name in ("low", "high", "trait"):
            mix: Mapping[str, float] = getattr(self, mix_name)
            unknown = sorted(set(mix) - set(LABELS))
            if unknown:
                raise ValueError(f"{where}: `{mix_name}` has unknown labels {unknown}")
            if any(not (math.isfinite(w) and w >= 0.0) for w in mix.values()):
                raise ValueError(f"{where}: `{mix_name}` weights must be finite and ≥ 0")
        for mix_name in ("low", "high"):
            if not math.isclose(sum(getattr(self, mix_name).values()), 1.0, abs_tol=1e-9):
                raise ValueError(f"{where}: `{mix_name}` weights must sum to 1")
        if _valence_of(self.low) >= 0.0 or _valence_of(self.high) <= 0.0:
            raise ValueError(f"{where}: `low` must read negative and `high` positive")
        if sum(self.trait.values()) > 0.5:
            raise ValueError(f"{where}: `trait` weights must sum to at most 0.5")
        if set(self.effects) != set(Strategy):
            raise ValueError(f"{where}: `effects` must give every strategy exactly once")
        if any(not -1.0 <= e <= 1.0 for e in self.effects.values()):
            raise ValueError(f"{where}: every effect must be in [-1, 1]")
        if set(self.texts) != set(_BANDS) or not all(self.texts.values()):
            raise ValueError(f"{where}: `texts` needs messages for {', '.join(_BANDS)}")
        if not -1.0 <= self.start[0] <= self.start[1] <= 1.0:
            raise ValueError(f"{where}: `start` must be a range within [-1, 1]")
        if not 1 <= self.turns[0] <= self.turns[1]:
            raise ValueError(f"{where}: `turns` must be a range of at least 1")
        if not (0.0 <= self.feedback <= 1.0 and 0.0 <= self.noise <= 1.0):
            raise ValueError(f"{where}: `feedback` and `noise` must be in [0, 1]")

    def best(self) -> Strategy:
        """The strategy that helps this persona most (hidden from the agent)."""
        return max(self.effects, key=lambda s: self.effects[s])


def _valence_of(mix: Mapping[str, float]) -> float:
    return sum(VALENCE[label] * w for label, w in mix.items())


def _vector(mix: Mapping[str, float]) -> FloatArray:
    return np.array([mix.get(label, 0.0) for label in LABELS], dtype=np.float64)


class SimulatedUser:
    """One user of a persona in one episode: hidden valence in, readings and reactions out.

    The initial valence and the episode's length are drawn on construction,
    first, so that every policy run with the same generator state meets the
    same user.
    """

    def __init__(self, persona: Persona, rng: np.random.Generator) -> None:
        self.persona = persona
        self._valence = float(rng.uniform(*persona.start))
        self.initial_valence = self._valence
        self.turns = int(rng.integers(persona.turns[0], persona.turns[1] + 1))
        self._low, self._high = _vector(persona.low), _vector(persona.high)
        self._trait = _vector(persona.trait)
        self._low_valence, self._high_valence = _valence_of(persona.low), _valence_of(persona.high)
        self._trait_valence = _valence_of(persona.trait)
        self._neutral = LABELS.index(NEUTRAL)

    @property
    def valence(self) -> float:
        """The hidden valence now."""
        return self._valence

    @property
    def group(self) -> str:
        """The hidden state's Ekman group: the `low` mix's, the `high` mix's, or neutral."""
        band = self._band()
        if band == "mid":
            return NEUTRAL
        mix = self.persona.low if band == "low" else self.persona.high
        return EKMAN_OF[max(mix, key=lambda label: mix[label])]

    def _band(self) -> str:
        return "low" if self._valence < _LOW else "high" if self._valence > _HIGH else "mid"

    def speak(self, rng: np.random.Generator) -> tuple[str, EmotionReading]:
        """This turn's message and its reading, consistent with the hidden valence."""
        choices = self.persona.texts[self._band()]
        text = choices[int(rng.integers(len(choices)))]
        scores = self._mix()
        scores *= rng.lognormal(0.0, _JITTER, size=len(LABELS))
        scores /= scores.sum()
        return text, reading_from(dict(zip(LABELS, scores.tolist(), strict=True)), model=MODEL_NAME)

    def _mix(self) -> FloatArray:
        """Label weights whose valence is the hidden valence (as near as the mixes allow)."""
        room = 1.0 - float(self._trait.sum())
        rest = self._valence - self._trait_valence
        if rest < 0.0:
            scores = self._trait + min(room, rest / self._low_valence) * self._low
        else:
            scores = self._trait + min(room, rest / self._high_valence) * self._high
        scores[self._neutral] += max(0.0, 1.0 - float(scores.sum()))
        return scores

    def respond(self, strategy: Strategy, rng: np.random.Generator) -> tuple[float, int | None]:
        """React to a reply: the hidden valence change and the explicit feedback, if any."""
        effect = self.persona.effects[strategy]
        room = (1.0 - self._valence) if effect >= 0.0 else (1.0 + self._valence)
        drift = effect * room / 2.0 + float(rng.normal(0.0, self.persona.noise))
        before = self._valence
        self._valence = min(1.0, max(-1.0, before + drift))
        change = self._valence - before
        gives = float(rng.random()) < self.persona.feedback
        return change, ((1 if change > 0.0 else -1) if gives else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeResult:
    """One simulated conversation: per-reply rewards and strategies, hidden valences."""

    persona: str
    rewards: tuple[float, ...]
    strategies: tuple[Strategy, ...]
    initial_valence: float
    final_valence: float
    handed_off: bool = False

    @property
    def total_reward(self) -> float:
        return float(sum(self.rewards))

    @property
    def valence_gain(self) -> float:
        """Final minus initial hidden valence."""
        return self.final_valence - self.initial_valence

    @property
    def turns(self) -> int:
        """How many replies the policy made."""
        return len(self.strategies)


def run_episode(
    policy: Policy,
    persona: Persona,
    rng: np.random.Generator,
    *,
    learner: Learner | None = None,
) -> EpisodeResult:
    """One conversation of a new `persona` user with `policy`; `learner` sees each reward.

    `rng` drives the user only; a policy that draws has its own generator.
    Raises ValueError if the policy abstains (give it a fallback).
    """
    user = SimulatedUser(persona, rng)
    history = HistorySummary.first_time()
    mood = ConversationMood()
    conversation: list[Exchange] = []
    rewards: list[float] = []
    strategies: list[Strategy] = []
    text, reading = user.speak(rng)
    for turn in range(user.turns):
        mood = update_mood(mood, reading)
        context = TurnContext(
            text=text,
            emotion=reading,
            history=history,
            conversation=tuple(conversation),
            mood=mood,
            now=30.0 * turn,
        )
        decision = policy.decide(context)
        if decision is None:
            raise ValueError(f"policy {policy.name!r} abstained; add a fallback to it")
        if decision.action is not Action.REPLY:
            return _result(user, rewards, strategies, handed_off=True)
        _, feedback = user.respond(decision.strategy, rng)
        conversation.append(
            Exchange(
                text=text,
                reply=f"({decision.strategy.value} reply)",
                emotion=reading,
                strategy=decision.strategy,
            )
        )
        text, after = user.speak(rng)
        earned = reward(feedback, reading.valence, after.valence)
        if earned is None:  # pragma: no cover - a valence is always present
            raise AssertionError("reward without a signal")
        if learner is not None:
            learner(context_features(context), decision.strategy, earned)
        rewards.append(earned)
        strategies.append(decision.strategy)
        reading = after
    return _result(user, rewards, strategies, handed_off=False)


def _result(
    user: SimulatedUser, rewards: list[float], strategies: list[Strategy], *, handed_off: bool
) -> EpisodeResult:
    return EpisodeResult(
        persona=user.persona.name,
        rewards=tuple(rewards),
        strategies=tuple(strategies),
        initial_valence=user.initial_valence,
        final_valence=user.valence,
        handed_off=handed_off,
    )


class RandomPolicy:
    """The baseline: a strategy drawn uniformly at random, every turn, with its propensity."""

    name = "random"

    def __init__(
        self, rng: np.random.Generator, *, strategies: Sequence[Strategy] = tuple(Strategy)
    ) -> None:
        if not strategies:
            raise ValueError("random policy: give it at least one strategy")
        self._rng = rng
        self._strategies = tuple(strategies)

    def decide(self, context: TurnContext) -> Decision:
        strategy = self._strategies[int(self._rng.integers(len(self._strategies)))]
        p = 1.0 / len(self._strategies)
        return Decision(
            action=Action.REPLY,
            strategy=strategy,
            tone=DEFAULT_TONES[strategy],
            confidence=p,
            policy=self.name,
            reasons=("baseline: uniformly random strategy",),
            propensity=p,
        )


_S = Strategy

# The invented personas (see the module docstring). Each description says whether
# the shipped rules already play the persona's best strategy.
PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="angry_customer",
        description=(
            "an order went wrong; an apology calms them, being told to calm down less so, "
            "cheerfulness enrages. The rules de-escalate (and hand off after three angry turns)."
        ),
        low={"anger": 0.6, "annoyance": 0.25, "disapproval": 0.15},
        high={"relief": 0.4, "gratitude": 0.35, "approval": 0.25},
        trait={"annoyance": 0.15},
        start=(-0.75, -0.5),
        feedback=0.4,
        effects={
            _S.APOLOGIZE: 0.35, _S.DE_ESCALATE: 0.2, _S.EMPATHIZE: 0.15, _S.REASSURE: 0.05,
            _S.INFORM: 0.0, _S.CLARIFY: -0.05, _S.ENCOURAGE: -0.1, _S.CELEBRATE: -0.35,
        },
        texts={
            "low": ("This is the third time my order has gone missing. Unacceptable.",
                    "I have waited two weeks and nobody answers my emails!",
                    "Your service is a joke. I want my money back."),
            "mid": ("Fine. What are you going to do about it?", "OK, but this should not happen."),
            "high": ("Alright, thanks for sorting it out.", "Good, that actually helps."),
        },
    ),
    Persona(
        name="fed_up_regular",
        description=(
            "a long-time customer sick of excuses who wants facts: what happens next helps, "
            "soothing talk grates. The rules de-escalate."
        ),
        low={"disgust": 0.55, "disapproval": 0.25, "annoyance": 0.2},
        high={"approval": 0.5, "relief": 0.3, "gratitude": 0.2},
        trait={"disapproval": 0.15},
        start=(-0.7, -0.45),
        feedback=0.3,
        effects={
            _S.INFORM: 0.35, _S.CLARIFY: 0.15, _S.APOLOGIZE: 0.1, _S.DE_ESCALATE: 0.1,
            _S.REASSURE: 0.0, _S.EMPATHIZE: -0.1, _S.ENCOURAGE: -0.15, _S.CELEBRATE: -0.35,
        },
        texts={
            "low": ("Same bug as last month. Honestly, this is pathetic.",
                    "Spare me the script and just tell me when it will be fixed."),
            "mid": ("And the refund, when does that arrive?", "Which version has the fix?"),
            "high": ("That is what I needed to know.", "Good. Clear enough."),
        },
    ),
    Persona(
        name="anxious_first_timer",
        description=(
            "worried about a payment that has not arrived; wants reassurance, then information. "
            "The rules reassure while fear shows, then inform: already about right."
        ),
        low={"nervousness": 0.55, "fear": 0.35, "confusion": 0.1},
        high={"relief": 0.5, "gratitude": 0.3, "optimism": 0.2},
        trait={"nervousness": 0.12},
        start=(-0.6, -0.35),
        feedback=0.3,
        effects={
            _S.REASSURE: 0.3, _S.INFORM: 0.25, _S.EMPATHIZE: 0.15, _S.CLARIFY: 0.1,
            _S.ENCOURAGE: 0.05, _S.APOLOGIZE: -0.05, _S.DE_ESCALATE: -0.05, _S.CELEBRATE: -0.2,
        },
        texts={
            "low": ("I'm really worried, my payment still hasn't arrived.",
                    "What if the money is lost? I need it for rent."),
            "mid": ("Okay. How long does it usually take?", "So what should I check next?"),
            "high": ("Phew, that's a relief, thank you.", "Great, I feel much better now."),
        },
    ),
    Persona(
        name="confused_polite",
        description=(
            "polite and lost in the set-up steps, showing little emotion; a clarifying question "
            "helps, more information buries them. The rules see no rule-worthy emotion and inform."
        ),
        low={"disappointment": 0.4, "nervousness": 0.3, "embarrassment": 0.3},
        high={"gratitude": 0.5, "relief": 0.3, "approval": 0.2},
        trait={"confusion": 0.18, "curiosity": 0.1},
        start=(-0.35, -0.15),
        feedback=0.2,
        effects={
            _S.CLARIFY: 0.35, _S.REASSURE: 0.1, _S.INFORM: 0.05, _S.EMPATHIZE: 0.05,
            _S.ENCOURAGE: 0.05, _S.APOLOGIZE: -0.05, _S.DE_ESCALATE: -0.15, _S.CELEBRATE: -0.15,
        },
        texts={
            "low": ("Sorry, I followed the guide but I'm not sure what step four means.",
                    "I don't quite follow, which settings page do you mean?"),
            "mid": ("Thanks. Should I do that before or after logging in?",
                    "I see, so the code goes in the first box?"),
            "high": ("Oh, that worked, thank you so much!", "Got it now, thanks for the help."),
        },
    ),
    Persona(
        name="sad_user",
        description=(
            "low after a loss; empathy helps most, then gentle encouragement, facts do not. "
            "The rules empathize while sadness shows, then inform."
        ),
        low={"sadness": 0.55, "grief": 0.2, "disappointment": 0.25},
        high={"optimism": 0.4, "gratitude": 0.35, "relief": 0.25},
        trait={"sadness": 0.12},
        start=(-0.7, -0.4),
        feedback=0.25,
        effects={
            _S.EMPATHIZE: 0.3, _S.ENCOURAGE: 0.2, _S.REASSURE: 0.1, _S.APOLOGIZE: 0.0,
            _S.INFORM: -0.05, _S.CLARIFY: -0.05, _S.DE_ESCALATE: -0.05, _S.CELEBRATE: -0.25,
        },
        texts={
            "low": ("My dog died yesterday and I can't stop crying.",
                    "Everything feels pointless since I lost my job."),
            "mid": ("I guess I just need to get through the week.", "Thanks for listening."),
            "high": ("Talking helped, I feel a bit lighter.", "You're right, tomorrow is new."),
        },
    ),
    Persona(
        name="happy_user",
        description=(
            "sharing good news; celebrating with them helps, fuss does not. "
            "The rules celebrate: already about right."
        ),
        low={"disappointment": 0.5, "annoyance": 0.5},
        high={"joy": 0.4, "excitement": 0.35, "gratitude": 0.25},
        trait={"amusement": 0.12},
        start=(0.3, 0.6),
        feedback=0.3,
        effects={
            _S.CELEBRATE: 0.25, _S.ENCOURAGE: 0.15, _S.INFORM: 0.05, _S.CLARIFY: 0.0,
            _S.EMPATHIZE: 0.0, _S.REASSURE: -0.05, _S.APOLOGIZE: -0.15, _S.DE_ESCALATE: -0.25,
        },
        texts={
            "low": ("Hm, that's a bit of a letdown.", "Not what I hoped for."),
            "mid": ("Okay, sounds good.", "Sure, let's do that."),
            "high": ("I passed my exam!!", "We got the house, I'm so happy!"),
        },
    ),
)  # fmt: skip
