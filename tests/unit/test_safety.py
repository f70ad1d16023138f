"""The safety policy: crisis override in both languages, look-alikes abstain, safe messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.language import Language, detect_language
from agent.values import (
    Action,
    Decision,
    EmotionReading,
    HistorySummary,
    Strategy,
    Tone,
    TurnContext,
)
from policies.base import Policy
from policies.ensemble import FallbackPolicy, Member, PolicyEnsemble
from policies.rules import RulePolicy
from policies.safety import (
    SAFE_MESSAGES,
    CrisisCategory,
    CrisisTerm,
    SafetyPolicy,
    safe_message,
)

_NEUTRAL = EmotionReading(
    scores={"neutral": 1.0}, dominant="neutral", valence=0.0, arousal=0.1, intensity=0.1,
    model="test",
)  # fmt: skip
_ANGRY = EmotionReading(
    scores={"anger": 0.9, "neutral": 0.1}, dominant="anger", valence=-0.8, arousal=0.9,
    intensity=0.9, model="test",
)  # fmt: skip
_SAD = EmotionReading(
    scores={"sadness": 0.8, "neutral": 0.2}, dominant="sadness", valence=-0.7, arousal=0.3,
    intensity=0.8, model="test",
)  # fmt: skip
_AFRAID = EmotionReading(
    scores={"fear": 0.8, "neutral": 0.2}, dominant="fear", valence=-0.6, arousal=0.7,
    intensity=0.8, model="test",
)  # fmt: skip
_HAPPY = EmotionReading(
    scores={"joy": 0.8, "neutral": 0.2}, dominant="joy", valence=0.7, arousal=0.6,
    intensity=0.8, model="test",
)  # fmt: skip

_POLICY = SafetyPolicy()


def _context(text: str, emotion: EmotionReading = _NEUTRAL) -> TurnContext:
    return TurnContext(text=text, emotion=emotion, history=HistorySummary.first_time())


def _assert_crisis_handoff(
    text: str, category: CrisisCategory, strategy: Strategy, language: str
) -> Decision:
    decision = _POLICY.decide(_context(text))
    assert decision is not None, text
    assert decision.action is Action.HANDOFF
    assert (decision.strategy, decision.tone) == (strategy, Tone.CALM)
    assert decision.confidence == 1.0
    assert decision.policy == f"safety:{category.value}"
    assert language in decision.reasons[0]
    for reason in decision.reasons:
        assert text.casefold() not in reason.casefold()
        assert not any("\u4e00" <= char <= "\u9fff" for char in reason), reason
    return decision


SELF_HARM_EN = [
    "I want to kill myself",
    "Honestly I just want to END MY LIFE tonight",
    "I don’t want to live anymore.",
    "i dont want to be alive",
    "I have been thinking about suicide a lot lately",
    "Some days I feel suicidal, and nobody notices",
    "I've been cutting myself again",
    "took an overdose last week and I might do it again",
    "Everyone would be better off without me",
    "there is no reason to live anymore after this",
    "I'm not sure I want to live anymore",
    "I'm not ok, I want to die",
    "Sometimes I wish I was dead",
    "I'm going to swallow all my sleeping pills",
    "life isn't worth living without her",
    "I'm going to end it all without anyone noticing",
]
SELF_HARM_ZH = [
    "我想死",
    "我真的不想活了，什么都没意思",
    "最近总觉得活不下去了",
    "我想自杀",
    "我想结束自己的生命",
    "昨天晚上又割腕了",
    "我现在就要跳楼",
    "这几天一直有轻生的念头",
    "我想了结自己",
    "我 想 死",
    "我想死我真的撑不住了",
    "我想自殺",
    "活着没有意义",
    "不过我真的想死",
    "我好想死心里好难受",
]
HARM_EN = [
    "I'm going to kill him",
    "If this isn't fixed, I WILL HURT SOMEONE",
    "im gonna shoot up the school tomorrow",
    "I want to bomb the office where they work",
    "i swear i'll kill my boss",
    "I'll shoot him the next time I see him",
    "I want them all dead",
]
HARM_ZH = [
    "我要杀了他",
    "我真想杀人",
    "我要报复社会",
    "大不了跟他们同归于尽",
    "我要殺了他",
    "再不退款我就炸了你们公司",
    "我要捅死他",
]


@pytest.mark.parametrize("text", SELF_HARM_EN)
def test_self_harm_in_english_hands_off(text: str) -> None:
    _assert_crisis_handoff(text, CrisisCategory.SELF_HARM, Strategy.EMPATHIZE, "English")


@pytest.mark.parametrize("text", SELF_HARM_ZH)
def test_self_harm_in_chinese_hands_off(text: str) -> None:
    _assert_crisis_handoff(text, CrisisCategory.SELF_HARM, Strategy.EMPATHIZE, "Chinese")


@pytest.mark.parametrize("text", HARM_EN)
def test_harm_to_others_in_english_hands_off(text: str) -> None:
    _assert_crisis_handoff(text, CrisisCategory.HARM_TO_OTHERS, Strategy.DE_ESCALATE, "English")


@pytest.mark.parametrize("text", HARM_ZH)
def test_harm_to_others_in_chinese_hands_off(text: str) -> None:
    _assert_crisis_handoff(text, CrisisCategory.HARM_TO_OTHERS, Strategy.DE_ESCALATE, "Chinese")


def test_reasons_name_category_language_and_reply_language() -> None:
    decision = _POLICY.decide(_context("我要杀了他然后自杀"))
    assert decision is not None
    assert decision.policy == "safety:harm_to_others"
    assert decision.reasons == (
        "crisis signal: harm to others (Chinese)",
        "crisis signal: self-harm (Chinese)",
        "a crisis overrides every other policy: "
        "safe-messaging reply in Chinese and a handoff to a human",
    )


def test_a_chinese_phrase_in_an_english_turn_still_hands_off() -> None:
    decision = _POLICY.decide(_context("Sorry for bothering you, my English is bad. 我想死"))
    assert decision is not None
    assert decision.reasons[0] == "crisis signal: self-harm (Chinese)"
    assert "reply in English" in decision.reasons[-1]


LOOK_ALIKES_EN = [
    "this bug is killing me",
    "the deadline is killing me, can you speed it up?",
    "I'm dying to know when it ships",
    "how do I kill the process?",
    "I'll kill the agent process and restart it",
    "offline mode is a killer feature",
    "that cake was to die for",
    "I have a dead battery",
    "my phone died twice today",
    "my wife is going to kill me if this parcel is late",
    "I'd kill for a coffee right now",
    "you guys are killing it",
    "I'm going to kill it at the presentation",
    "I nearly died laughing",
    "I want to die of embarrassment",
    "this is the hill I want to die on",
    "cancelling the feature would be career suicide",
    "we watched Suicide Squad last night",
    "caffeine overdose before the meeting",
    "I'm going to bomb this interview",
    "I'm going to bomb the bar exam",
    "this pizza is the bomb",
    "I'll shoot you an email",
    "I'll shoot him a message later",
    "I'm going to kill them with kindness",
    "I accidentally cut myself opening the box",
    "I cut myself on the packaging, it's too sharp",
    "I don't want to live in this city",
    "this faulty heater will hurt someone",
    "the refund took my life savings",
    "prices shot up the charts",
    "my phone is blowing up with notifications",
    "I need to end my subscription",
    "can you kill my subscription?",
    "the shipping fees are killing us",
    "your app keeps crashing, kill me now",
    "I'd rather die than call support again",
    "I nearly killed myself tripping over your parcel",
    "this flat is not worth living with that noise",
]
LOOK_ALIKES_ZH = [
    "笑死我了",
    "累死了",
    "气死我了",
    "热死了",
    "饿死了",
    "烦死了",
    "困死了",
    "吓死我了",
    "急死了，快点发货",
    "热得要死",
    "想死你了",
    "好想死你们啦",
    "跳楼价，赶紧买",
    "跳楼大甩卖",
    "怎么减轻生活压力",
    "关爱年轻生命",
    "轻生活方式",
    "这款手机秒杀他们家的产品",
    "大数据杀熟",
    "帮我砍一刀",
    "杀毒软件打不开",
    "服务器炸了",
    "手机死机了",
    "我要死磕到底",
    "这个bug要了我的命",
    "自杀式降价",
    "我们玩杀人游戏吧",
    "他们封杀了他",
    "打死我也不信",
    "只许州官放火，不许百姓点灯",
    "砍了他们的预算",
    "产品结束生命周期",
    "思想死板",
    "好想死党们",
    "这样会伤害自己的品牌",
    "这价格杀疯了",
    "我要杀价",
    "急死人了",
    "这东西会毒死人的",
    "生不如死的体验",
    "直接退款一了百了",
    "你去死吧",
]


@pytest.mark.parametrize("text", LOOK_ALIKES_EN)
def test_english_look_alikes_abstain(text: str) -> None:
    assert _POLICY.decide(_context(text)) is None


@pytest.mark.parametrize("text", LOOK_ALIKES_ZH)
def test_chinese_look_alikes_abstain(text: str) -> None:
    assert _POLICY.decide(_context(text)) is None


@pytest.mark.parametrize(
    "text",
    [
        "I'm not suicidal, just annoyed",
        "I would never kill myself over a parcel",
        "I'm not going to hurt myself, relax",
        "no suicidal thoughts here, just a billing question",
        "我不想死",
        "我从来没想过自杀",
        "我不会自杀的，放心",
        "别想不开，我们不会伤害自己的",
    ],
)
def test_negated_mentions_abstain(text: str) -> None:
    assert _POLICY.decide(_context(text)) is None


@pytest.mark.parametrize(
    ("category", "language", "emergency"),
    [
        (CrisisCategory.SELF_HARM, "en", "local emergency number"),
        (CrisisCategory.HARM_TO_OTHERS, "en", "local emergency number"),
        (CrisisCategory.SELF_HARM, "zh", "当地的紧急电话"),
        (CrisisCategory.HARM_TO_OTHERS, "zh", "当地的紧急电话"),
    ],
)
def test_safe_message_in_the_right_language(
    category: CrisisCategory, language: Language, emergency: str
) -> None:
    message = safe_message(category, language)
    assert message
    assert detect_language(message) == language
    assert emergency in message
    assert "colleague" in message or "同事" in message
    assert not any(char.isdigit() for char in message), "no phone numbers that may be wrong"


def test_every_category_has_a_message_in_both_languages() -> None:
    assert set(SAFE_MESSAGES) == {(c, lang) for c in CrisisCategory for lang in ("en", "zh")}


def test_extra_terms_and_look_alikes_extend_the_lists() -> None:
    cantonese = "我真係唔想活"
    slang = "thinking about sewerslide"
    game = "I'm going to kill him in the next round"
    assert _POLICY.decide(_context(cantonese)) is None
    assert _POLICY.decide(_context(slang)) is None
    assert _POLICY.decide(_context(game)) is not None

    policy = SafetyPolicy(
        extra_terms=(
            CrisisTerm(category=CrisisCategory.SELF_HARM, language="zh", pattern="唔想活"),
            CrisisTerm(
                category=CrisisCategory.SELF_HARM, language="en", pattern=r"\bsewer\s?slide"
            ),
        ),
        extra_look_alikes=(r"\bkill\s+(?:him|her|them)\s+in\s+the\s+next\s+(?:round|match)\b",),
    )
    for text in (cantonese, slang):
        decision = policy.decide(_context(text))
        assert decision is not None
        assert decision.policy == "safety:self_harm"
    assert policy.decide(_context(game)) is None


@pytest.mark.parametrize("pattern", ["(unclosed", "a*", ""])
def test_a_bad_extra_pattern_fails_at_construction(pattern: str) -> None:
    with pytest.raises((ConfigError, ValueError)):
        SafetyPolicy(
            extra_terms=(
                CrisisTerm(category=CrisisCategory.SELF_HARM, language="en", pattern=pattern),
            )
        )
    with pytest.raises((ConfigError, ValueError)):
        SafetyPolicy(extra_look_alikes=(pattern,))


@pytest.mark.parametrize(
    ("text", "emotion", "rule"),
    [
        ("I want to kill myself lol, anyway where is my parcel", _HAPPY, "rules:happy"),
        ("我不想活了", _SAD, "rules:sad"),
        ("I'm going to kill him, this is unacceptable", _ANGRY, "rules:angry"),
        ("我要报复社会", _AFRAID, "rules:afraid"),
        ("get me a real person, I want to end my life", _SAD, "rules:asks_for_human"),
    ],
)
def test_safety_overrides_what_the_rules_decide(
    text: str, emotion: EmotionReading, rule: str
) -> None:
    context = _context(text, emotion)
    rules = RulePolicy().decide(context)
    safety = SafetyPolicy().decide(context)
    assert rules is not None
    assert safety is not None
    assert rules.policy == rule
    assert safety.policy.startswith("safety:")
    assert safety.action is Action.HANDOFF
    assert safety.confidence == 1.0 > rules.confidence
    assert (safety.strategy, safety.action) != (rules.strategy, rules.action)


def test_given_the_top_priority_it_wins_the_ensemble() -> None:
    ensemble = PolicyEnsemble(
        [
            Member(SafetyPolicy(), priority=100),
            Member(RulePolicy(), priority=10),
            Member(FallbackPolicy(), priority=0),
        ]
    )
    decision = ensemble.decide(_context("I'm going to kill him, this is unacceptable", _ANGRY))
    assert decision is not None
    assert (decision.policy, decision.action) == ("safety:harm_to_others", Action.HANDOFF)
    assert any(reason.startswith("overruled rules:angry") for reason in decision.reasons)


def test_it_is_a_policy() -> None:
    policy: Policy = SafetyPolicy()
    assert policy.name == "safety"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_abstains_or_hands_off_without_echoing(text: str) -> None:
    decision = _POLICY.decide(_context(text))
    if decision is not None:
        assert (decision.action, decision.confidence) == (Action.HANDOFF, 1.0)
        assert all(
            reason.startswith(("crisis signal: ", "a crisis ")) for reason in decision.reasons
        )
