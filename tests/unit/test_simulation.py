import dataclasses
from statistics import fmean

import numpy as np
import pytest

from agent.emotion.conversation import update_mood
from agent.training.policy.simulation import (
    MODEL_NAME,
    PERSONAS,
    EpisodeResult,
    Persona,
    RandomPolicy,
    SimulatedUser,
    run_episode,
)
from agent.values import Action, ConversationMood, HistorySummary, Strategy, TurnContext
from policies.bandit import LinearBandit
from policies.bandit_policy import BanditPolicy
from policies.features import context_features
from policies.stack import PRIORITIES, Escalations, policy_stack

BY_NAME = {persona.name: persona for persona in PERSONAS}
ANGRY = BY_NAME["angry_customer"]


def _first_context(persona: Persona, seed: int) -> TurnContext:
    rng = np.random.default_rng(seed)
    text, reading = SimulatedUser(persona, rng).speak(rng)
    return TurnContext(
        text=text,
        emotion=reading,
        history=HistorySummary.first_time(),
        mood=update_mood(ConversationMood(), reading),
    )


def _mean_change(persona: Persona, strategy: Strategy, *, users: int = 300) -> float:
    rng = np.random.default_rng(1)
    changes = []
    for _ in range(users):
        user = SimulatedUser(persona, rng)
        changes.append(user.respond(strategy, rng)[0])
    return fmean(changes)


def _warm_bandit(updates: int = 20) -> BanditPolicy:
    """A bandit that learned apologizing is best on the angry customer's first turn."""
    bandit = LinearBandit()
    context = _first_context(ANGRY, 0)
    policy = BanditPolicy(bandit, rng=np.random.default_rng(0))
    for _ in range(updates):
        for strategy in Strategy:
            earned = 1.0 if strategy is Strategy.APOLOGIZE else -1.0
            bandit.update(context_features(context), strategy, earned)
    return policy


# The personas


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.name)
def test_the_preferred_strategy_raises_valence_in_expectation(persona: Persona) -> None:
    best = _mean_change(persona, persona.best())
    assert best > 0.05
    for other in Strategy:
        if other is not persona.best():
            assert best > _mean_change(persona, other)


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.name)
def test_readings_track_the_hidden_valence_and_stay_valid(persona: Persona) -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        user = SimulatedUser(persona, rng)
        _, reading = user.speak(rng)
        assert reading.model == MODEL_NAME
        assert reading.valence == pytest.approx(user.valence, abs=0.2)


def test_readings_of_the_angry_customer_make_the_rules_de_escalate() -> None:
    rules = policy_stack()
    for seed in range(20):
        context = _first_context(ANGRY, seed)
        decision = rules.decide(context)
        assert decision is not None
        assert (decision.strategy, decision.policy) == (Strategy.DE_ESCALATE, "rules:angry")
        assert SimulatedUser(ANGRY, np.random.default_rng(seed)).group == "anger"


@pytest.mark.parametrize(
    ("name", "rules_play"),
    [
        ("angry_customer", Strategy.DE_ESCALATE),
        ("fed_up_regular", Strategy.DE_ESCALATE),
        ("confused_polite", Strategy.INFORM),
        ("anxious_first_timer", Strategy.REASSURE),
        ("sad_user", Strategy.EMPATHIZE),
        ("happy_user", Strategy.CELEBRATE),
    ],
)
def test_what_the_rules_play_on_a_first_turn(name: str, rules_play: Strategy) -> None:
    decisions = [policy_stack().decide(_first_context(BY_NAME[name], seed)) for seed in range(10)]
    assert [d.strategy for d in decisions if d is not None].count(rules_play) >= 8


def test_no_persona_text_asks_for_a_person() -> None:
    rules = policy_stack()
    for persona in PERSONAS:
        for text in (t for texts in persona.texts.values() for t in texts):
            context = dataclasses.replace(_first_context(BY_NAME["happy_user"], 0), text=text)
            decision = rules.decide(context)
            assert decision is not None
            assert decision.action is Action.REPLY, text


def test_a_persona_is_checked_on_construction() -> None:
    fields = {f.name: getattr(ANGRY, f.name) for f in dataclasses.fields(ANGRY)}
    with pytest.raises(ValueError, match="every strategy"):
        Persona(**{**fields, "effects": {Strategy.APOLOGIZE: 0.3}})
    with pytest.raises(ValueError, match="unknown labels"):
        Persona(**{**fields, "trait": {"rage": 0.1}})
    with pytest.raises(ValueError, match="sum to 1"):
        Persona(**{**fields, "low": {"anger": 0.5}})
    with pytest.raises(ValueError, match="read negative"):
        Persona(**{**fields, "low": {"joy": 1.0}})


# Episodes


def test_an_episode_is_deterministic_given_its_seed() -> None:
    def play(seed: int) -> list[EpisodeResult]:
        bandit = LinearBandit()
        policy = policy_stack(bandit=BanditPolicy(bandit, rng=np.random.default_rng(seed)))
        return [
            run_episode(policy, persona, np.random.default_rng([seed, i]), learner=bandit.update)
            for i, persona in enumerate(PERSONAS * 5)
        ]

    assert play(4) == play(4)
    assert play(4) != play(5)


def test_an_episode_reports_rewards_strategies_and_valences() -> None:
    seen: list[tuple[Strategy, float]] = []
    result = run_episode(
        RandomPolicy(np.random.default_rng(0)),
        BY_NAME["happy_user"],
        np.random.default_rng(0),
        learner=lambda x, strategy, r: seen.append((strategy, r)),
    )
    assert 4 <= result.turns <= 6
    assert not result.handed_off
    assert seen == list(zip(result.strategies, result.rewards, strict=True))
    assert all(-1.0 <= r <= 1.0 for r in result.rewards)
    assert result.valence_gain == pytest.approx(result.final_valence - result.initial_valence)


def test_a_handoff_ends_the_episode_without_a_reward() -> None:
    results = [run_episode(policy_stack(), ANGRY, np.random.default_rng(i)) for i in range(40)]
    handed_off = [r for r in results if r.handed_off]
    assert handed_off  # the rules hand off after three angry turns
    assert all(r.turns == len(r.rewards) < 6 for r in handed_off)


def test_the_random_policy_plays_every_strategy_with_its_propensity() -> None:
    policy, context = RandomPolicy(np.random.default_rng(0)), _first_context(ANGRY, 0)
    decisions = [policy.decide(context) for _ in range(400)]
    assert {d.strategy for d in decisions} == set(Strategy)
    assert {d.propensity for d in decisions} == {1 / len(Strategy)}


# The rules+RL composition


def test_a_cold_bandit_leaves_the_turn_to_the_rules() -> None:
    stack = policy_stack(bandit=BanditPolicy(LinearBandit(), rng=np.random.default_rng(0)))
    decision = stack.decide(_first_context(ANGRY, 0))
    assert decision is not None
    assert decision.policy == "rules:angry"
    assert "bandit" in decision.abstained


def test_a_warm_bandit_overrides_a_reply_but_never_a_handoff() -> None:
    stack = policy_stack(bandit=_warm_bandit())
    context = _first_context(ANGRY, 0)
    decision = stack.decide(context)
    assert decision is not None
    assert (decision.policy, decision.strategy) == ("bandit", Strategy.APOLOGIZE)
    assert any(reason.startswith("overruled rules:angry") for reason in decision.reasons)

    asks = dataclasses.replace(context, text="Put me through to a manager, now.")
    handoff = stack.decide(asks)
    assert handoff is not None
    assert (handoff.action, handoff.policy) == (Action.HANDOFF, "rules:asks_for_human")


def test_below_the_rules_a_warm_bandit_only_fills_their_gaps() -> None:
    stack = policy_stack(bandit=_warm_bandit(), bandit_overrides_rules=False)
    decision = stack.decide(_first_context(ANGRY, 0))
    assert decision is not None
    assert decision.policy == "rules:angry"
    assert PRIORITIES["bandit_below_rules"] < PRIORITIES["rules"]


def test_escalations_pass_on_handoffs_only() -> None:
    escalations = Escalations(policy_stack())
    context = _first_context(ANGRY, 0)
    assert escalations.decide(context) is None
    asks = escalations.decide(dataclasses.replace(context, text="Get me a real person."))
    assert asks is not None
    assert asks.action is Action.HANDOFF


def test_rules_and_rl_learn_to_beat_the_rules_on_the_angry_customer() -> None:
    episodes, tail = 600, 200
    bandit = LinearBandit()
    learned = policy_stack(bandit=BanditPolicy(bandit, rng=np.random.default_rng(0)))
    rules = policy_stack()
    rl_rewards, rules_rewards, replies = [], [], 0
    for i in range(episodes):
        rl = run_episode(learned, ANGRY, np.random.default_rng([1, i]), learner=bandit.update)
        base = run_episode(rules, ANGRY, np.random.default_rng([1, i]))
        rl_rewards.append(rl.total_reward)
        rules_rewards.append(base.total_reward)
        replies += rl.turns
    assert fmean(rl_rewards[-tail:]) > fmean(rules_rewards[-tail:]) + 0.2
    assert bandit.updates == replies  # it learned from every reply, whoever served it
