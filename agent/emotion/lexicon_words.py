"""The bilingual emotion lexicon: cue words and phrases per GoEmotions label.

English cues match whole words (a trailing `*` matches any ending); Chinese
cues match as substrings, since Chinese is written without spaces.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["EN_CUES", "NEGATIONS_EN", "NEGATIONS_ZH", "ZH_CUES"]

EN_CUES: Mapping[str, tuple[str, ...]] = {
    "admiration": ("amazing", "awesome", "impressive", "brilliant", "incredible", "admire*"),
    "amusement": ("lol", "haha*", "funny", "hilarious", "lmao"),
    "anger": (
        "angry", "furious", "mad", "outraged", "rage", "hate", "pissed", "livid",
        "ridiculous", "unacceptable", "fed up", "sick of",
    ),
    "annoyance": ("annoy*", "irritat*", "frustrat*", "tired of", "ugh", "again?!", "still not"),
    "approval": ("agree", "sounds good", "fair enough", "makes sense", "okay great"),
    "caring": ("take care", "hope you", "be safe", "look after"),
    "confusion": ("confus*", "don't understand", "makes no sense", "what do you mean", "lost"),
    "curiosity": ("curious", "wonder*", "how does", "why does", "interested"),
    "desire": ("wish", "want to", "would love", "hoping for", "can't wait"),
    "disappointment": ("disappoint*", "let down", "letdown", "expected better", "shame"),
    "disapproval": ("wrong", "terrible", "awful", "bad service", "worst", "useless"),
    "disgust": ("disgust*", "gross", "revolting", "nasty", "sickening"),
    "embarrassment": ("embarrass*", "ashamed", "awkward", "humiliat*"),
    "excitement": ("excited", "exciting", "thrilled", "can't wait", "woohoo", "yay"),
    "fear": ("afraid", "scared", "terrified", "fear*", "frightened", "panic*"),
    "gratitude": ("thank*", "thx", "grateful", "appreciate*"),
    "grief": ("passed away", "died", "mourning", "grief", "grieving", "lost my"),
    "joy": ("happy", "glad", "great", "wonderful", "delighted", "joy*", "love it"),
    "love": ("love", "adore", "lovely", "<3"),
    "nervousness": ("nervous", "anxious", "worried", "worry*", "uneasy", "stress*"),
    "optimism": ("hopeful", "hope", "optimistic", "looking forward", "fingers crossed"),
    "pride": ("proud", "accomplished", "nailed it"),
    "realization": ("realiz*", "i see", "now i get", "turns out", "oh i"),
    "relief": ("relieved", "relief", "phew", "finally works", "thank god"),
    "remorse": ("sorry", "apologi*", "my fault", "regret*", "my bad"),
    "sadness": ("sad", "unhappy", "depressed", "miserable", "lonely", "crying", "heartbroken"),
    "surprise": ("wow", "whoa", "surpris*", "unexpected", "can't believe", "omg"),
}  # fmt: skip

ZH_CUES: Mapping[str, tuple[str, ...]] = {
    "admiration": ("厉害", "佩服", "了不起", "太棒", "牛"),
    "amusement": ("哈哈", "好笑", "搞笑", "笑死"),
    "anger": ("生气", "气死", "愤怒", "恼火", "火大", "可恶", "混蛋", "尼玛", "受够"),
    "annoyance": ("烦", "讨厌", "郁闷", "无语", "又出问题"),
    "approval": ("同意", "可以", "没问题", "好的"),
    "caring": ("保重", "注意身体", "照顾"),
    "confusion": ("不懂", "不明白", "搞不懂", "困惑", "什么意思"),
    "curiosity": ("好奇", "为什么", "怎么回事"),
    "desire": ("想要", "希望能", "渴望"),
    "disappointment": ("失望", "遗憾", "白等"),
    "disapproval": ("太差", "糟糕", "垃圾", "不行"),
    "disgust": ("恶心", "反感", "讨厌死"),
    "embarrassment": ("尴尬", "丢人", "不好意思"),
    "excitement": ("激动", "兴奋", "期待"),
    "fear": ("害怕", "恐惧", "吓死", "怕"),
    "gratitude": ("谢谢", "感谢", "多谢"),
    "grief": ("去世", "离世", "悲痛"),
    "joy": ("开心", "高兴", "快乐", "幸福", "嘻"),
    "love": ("爱", "喜欢", "么么哒"),
    "nervousness": ("紧张", "担心", "焦虑", "不安"),
    "optimism": ("加油", "会好的", "相信"),
    "pride": ("骄傲", "自豪"),
    "realization": ("原来", "明白了"),
    "relief": ("松了口气", "终于", "放心"),
    "remorse": ("对不起", "抱歉", "后悔"),
    "sadness": ("难过", "伤心", "悲伤", "哭", "委屈"),
    "surprise": ("惊讶", "没想到", "天哪", "居然"),
}  # fmt: skip

NEGATIONS_EN: tuple[str, ...] = ("not", "no", "never", "don't", "didn't", "isn't", "wasn't")
NEGATIONS_ZH: tuple[str, ...] = ("不", "没", "别")
