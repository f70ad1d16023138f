"""Reply templates per strategy and language, and the words for each feeling."""

from __future__ import annotations

from collections.abc import Mapping

from agent.language import Language
from agent.values import Action, Strategy

__all__ = ["ACTION_TEMPLATES", "FEELING_WORDS", "HANDOFF_NOTICES", "STRATEGY_TEMPLATES"]

STRATEGY_TEMPLATES: Mapping[tuple[Strategy, Language], tuple[str, ...]] = {
    (Strategy.EMPATHIZE, "en"): (
        "I'm really sorry you're feeling {feeling}. That sounds hard, and I'm here to help.",
        "That sounds genuinely {feeling}, and it makes sense you feel that way. Let's work through it together.",
        "Thank you for telling me. Feeling {feeling} is tough; tell me more and we'll take it step by step.",
        "Thank you for sharing that with me. I'm here, and we'll take it one step at a time.",
    ),
    (Strategy.APOLOGIZE, "en"): (
        "I'm sorry about this. You shouldn't have to deal with it, and I'll do my best to put it right.",
        "My apologies for the trouble. Let me fix what I can right now.",
    ),
    (Strategy.REASSURE, "en"): (
        "I understand feeling {feeling}. You're in good hands: we'll sort this out together.",
        "It's okay to feel {feeling}. Nothing is lost, and I'll guide you through each step.",
        "Don't worry, this is fixable. Let's go one step at a time.",
    ),
    (Strategy.INFORM, "en"): (
        "Here's what I can tell you. Could you share a few details so I can give you the exact answer?",
        "Happy to help with that. Tell me a little more and I'll point you to the right steps.",
        "Sure. Let me walk you through it; first, what have you tried so far?",
    ),
    (Strategy.CLARIFY, "en"): (
        "Let me make sure I understand: could you say a bit more about what you need?",
        "I want to get this right for you. Which part is unclear, so I can explain it better?",
    ),
    (Strategy.ENCOURAGE, "en"): (
        "You're making real progress. Keep going, and I'll be right here if you get stuck.",
        "That's a good step forward. Let's keep the momentum going.",
    ),
    (Strategy.CELEBRATE, "en"): (
        "That's wonderful to hear! I'm so glad things are going well.",
        "Fantastic news! Thanks for sharing that with me.",
        "Love to hear it! Is there anything else I can do to keep the good times rolling?",
    ),
    (Strategy.DE_ESCALATE, "en"): (
        "I hear you, and I understand why you're {feeling}. Let's fix this now: I'm on it.",
        "You have every reason to be {feeling}, and I'm sorry. Let me take care of this right away.",
        "I'm sorry this has been so frustrating. Let's slow down and solve it together, one step at a time.",
    ),
    (Strategy.EMPATHIZE, "zh"): (
        "听到你感到{feeling}，我真的很抱歉。我会一直在这里帮你。",
        "这确实让人{feeling}，你的感受完全可以理解。我们一起想办法。",
        "谢谢你告诉我。感到{feeling}不容易，慢慢说，我们一步一步来。",
        "谢谢你愿意告诉我。我在这里，我们一步一步来。",
    ),
    (Strategy.APOLOGIZE, "zh"): (
        "非常抱歉给你带来麻烦，我会尽力把问题解决好。",
        "真的很抱歉，我马上帮你处理。",
    ),
    (Strategy.REASSURE, "zh"): (
        "我理解你的{feeling}。别担心，我们一起把这件事解决好。",
        "感到{feeling}很正常。什么都没有丢失，我会一步一步帮你。",
        "放心，这个问题可以解决。我们一步一步来。",
    ),
    (Strategy.INFORM, "zh"): (
        "我来帮你看看。能再多告诉我一些细节吗？这样我能给你准确的答案。",
        "好的，没问题。请再说详细一点，我告诉你具体步骤。",
    ),
    (Strategy.CLARIFY, "zh"): (
        "我想确认一下我理解得对不对：你能再具体说说需要什么吗？",
        "为了帮到你，能告诉我哪一部分不太清楚吗？",
    ),
    (Strategy.ENCOURAGE, "zh"): (
        "你已经做得很好了，继续加油，有问题随时找我。",
        "这是很好的一步，我们继续保持。",
    ),
    (Strategy.CELEBRATE, "zh"): (
        "太好了！真为你高兴！",
        "好消息！谢谢你和我分享。",
    ),
    (Strategy.DE_ESCALATE, "zh"): (
        "我明白你为什么{feeling}，我们现在就解决这个问题，我马上处理。",
        "你{feeling}完全可以理解，非常抱歉。我立刻帮你处理。",
        "让你这么折腾真的很抱歉。我们一起一步一步把它解决。",
    ),
}  # fmt: skip

ACTION_TEMPLATES: Mapping[tuple[Action, Language], tuple[str, ...]] = {
    (Action.HANDOFF, "en"): (
        "I'm connecting you with a member of our team now; they'll see this conversation, so you won't have to repeat yourself.",
        "Let me bring in a colleague who can take this further. They'll be with you shortly and have the full context.",
    ),
    (Action.HANDOFF, "zh"): (
        "我现在为你转接人工客服，他们能看到我们的对话，你不用重复说明。",
        "我请同事来进一步帮你处理，他们很快就会联系你，并了解全部情况。",
    ),
    (Action.END, "en"): ("Thanks for talking with me. Take care!",),
    (Action.END, "zh"): ("谢谢你的交流，祝你一切顺利！",),
}  # fmt: skip

# What the user is told when a person will take over (the `handoff` message): never the
# policy's reasons, which are for staff. Keyed by whether the safety policy asked.
HANDOFF_NOTICES: Mapping[tuple[bool, Language], str] = {
    (False, "en"): "A member of our team will take over this conversation.",
    (False, "zh"): "我们的工作人员将接手这段对话。",
    (True, "en"): "A person from our team will join this conversation to make sure you get the right support.",
    (True, "zh"): "我们的工作人员将加入这段对话，确保你得到合适的帮助。",
}  # fmt: skip

FEELING_WORDS: Mapping[Language, Mapping[str, str]] = {
    "en": {
        "anger": "angry", "annoyance": "frustrated", "disapproval": "unhappy with this",
        "disgust": "upset", "sadness": "down", "grief": "heartbroken",
        "disappointment": "disappointed", "remorse": "regretful", "embarrassment": "embarrassed",
        "fear": "worried", "nervousness": "anxious", "confusion": "confused",
    },
    "zh": {
        "anger": "生气", "annoyance": "烦躁", "disapproval": "不满", "disgust": "反感",
        "sadness": "难过", "grief": "悲痛", "disappointment": "失望", "remorse": "自责",
        "embarrassment": "尴尬", "fear": "害怕", "nervousness": "焦虑", "confusion": "困惑",
    },
}  # fmt: skip
