"""The words of customer-support text: cues per label, irony, complaints and requests.

English cues match whole words (a trailing `*` matches any ending, a space any run of
spaces); Chinese cues match as substrings. Each cue names a GoEmotions label and how
sure the words make it (`strength`, the score the label gets at least).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BAD_EVENTS",
    "CONTRASTS",
    "CUES",
    "FIXED",
    "POLITE",
    "PRAISE",
    "REQUESTS",
    "STRONG",
    "THANKS",
    "Cue",
]


@dataclass(frozen=True, slots=True)
class Cue:
    label: str
    strength: float


STRONG = 0.9  # words that leave no doubt: nothing overrides them
_CLEAR = 0.75

CUES: Mapping[Cue, Mapping[str, tuple[str, ...]]] = {
    Cue("anger", STRONG): {
        "en": (
            "livid", "irate", "outraged", "outrageous", "incensed", "fuming", "seething",
            "furious", "enraged", "infuriat*", "fed up", "sick and tired", "sick of",
            "unacceptable", "ridiculous", "pathetic", "disgraceful", "a disgrace", "a joke",
            "scam*", "rip-off", "ripoff", "rip off", "incompetent", "useless", "absurd",
            "how dare", "angry", "pissed", "mad at", "hate", "worst", "shameful", "appalling",
            "thanks for nothing", "had enough", "last straw", "unbelievable", "insane",
        ),
        "zh": (
            "气炸", "气死", "火大", "愤怒", "忍无可忍", "受够", "无语", "服了", "垃圾", "骗子",
            "坑人", "坑爹", "投诉", "太过分", "过分", "离谱", "恼火", "破app", "破软件",
            "敷衍", "欺骗", "耍我", "搞什么", "生气", "可恶", "混蛋", "什么玩意", "退钱",
            "给个说法", "黑心", "霸王条款", "忽悠", "呵呵", "有病", "凭什么",
        ),
    },
    Cue("annoyance", _CLEAR): {
        "en": (
            "annoy*", "frustrat*", "irritat*", "still not", "still doesn't", "still don't",
            "still hasn't", "still haven't", "still isn't", "still no", "still waiting",
            "yet again", "second time", "third time", "fourth time", "every time",
            "again and again", "no one", "nobody", "no response", "no reply", "ignored",
            "ignoring", "waste of", "wasted", "on hold", "unhelpful", "terrible", "awful",
            "horrible", "rubbish", "nonsense", "ugh", "seriously?", "come on",
        ),
        "zh": (
            "烦", "郁闷", "又出问题", "还是没", "还没", "一直没", "三次", "第二次", "第三次",
            "好几次", "没人", "不回", "不理", "不管", "浪费", "太差", "糟糕", "差劲", "烂",
            "什么情况", "怎么回事", "到底", "效率", "拖",
        ),
    },
    Cue("disgust", STRONG): {
        "en": (
            "disgust*", "gross", "revolting", "vile", "nauseat*", "filthy", "repuls*",
            "made me sick", "sickening", "hair in", "a hair", "cockroach*", "maggot*",
            "mould*", "mold*", "moldy", "stain*", "smell*", "stink*", "stench", "rotten",
            "creepy", "bug in my", "bugs in", "insect*", "urine", "vomit*", "dirty",
        ),
        "zh": (
            "恶心", "反胃", "想吐", "作呕", "脏", "头发", "虫", "苍蝇", "蟑螂", "发霉", "霉",
            "臭", "馊", "变质", "异味", "猥琐", "尿", "吐了", "污渍",
        ),
    },
    Cue("fear", STRONG): {
        "en": (
            "terrified", "petrified", "scared", "afraid", "frightened", "panic*",
            "worried sick", "freaking out", "freaked out", "horrified",
        ),
        "zh": ("害怕", "吓死", "吓坏", "恐惧", "慌", "可怕", "不敢"),
    },
    Cue("nervousness", _CLEAR): {
        "en": (
            "worried", "worry*", "anxious", "nervous", "uneasy", "concerned", "stress*",
            "hacked", "fraud*", "stolen", "someone else", "not safe", "unsafe", "what if",
        ),
        "zh": ("担心", "焦虑", "紧张", "不安", "着急", "急死", "盗", "诈骗", "被骗", "怕"),
    },
    Cue("sadness", STRONG): {
        "en": (
            "devastated", "gutted", "heartbroken", "crushed", "miserable", "sad", "upset",
            "depressed", "crying", "in tears", "broke my heart",
        ),
        "zh": ("难过", "伤心", "心寒", "心累", "哭", "委屈", "悲伤", "绝望", "崩溃", "唉"),
    },
    Cue("disappointment", _CLEAR): {
        "en": (
            "disappoint*", "let down", "letdown", "expected better", "i guess", "never mind",
            "give up", "giving up", "ruined", "spoiled", "shame",
        ),
        "zh": ("失望", "遗憾", "算了", "白等", "泡汤", "可惜"),
    },
    Cue("joy", _CLEAR): {
        "en": (
            "delighted", "thrilled", "ecstatic", "overjoyed", "happy", "glad", "pleased",
            "love it", "made my day", "excellent", "fantastic service", "great service",
        ),
        "zh": ("开心", "高兴", "太好了", "太爽", "满意", "点赞", "给力", "好评", "惊喜", "棒"),
    },
    Cue("gratitude", _CLEAR): {
        "en": ("thank*", "thx", "grateful", "appreciate*", "cheers"),
        "zh": ("谢谢", "感谢", "多谢", "辛苦了"),
    },
    Cue("relief", _CLEAR): {
        "en": ("relieved", "relief", "phew", "finally", "sorted", "thank god"),
        "zh": ("松了一口气", "松了口气", "放心了", "终于"),
    },
    Cue("surprise", _CLEAR): {
        "en": (
            "wow", "whoa", "no way", "stunned", "astonished", "shocked", "surprised",
            "can't believe", "cannot believe", "what?", "wait what", "omg", "really?",
        ),
        "zh": ("居然", "竟然", "没想到", "震惊", "天哪", "天呐", "咦", "啊？", "什么？"),
    },
}  # fmt: skip

# Irony: praise next to a bad event means the opposite.
PRAISE: Mapping[str, tuple[str, ...]] = {
    "en": (
        "great", "perfect", "wonderful", "fantastic", "brilliant", "awesome", "amazing",
        "lovely", "nice job", "nice work", "good job", "well done", "thanks a lot",
        "thanks so much", "just what i needed", "love how", "love that", "love it when",
        "what a surprise", "bravo", "impressive", "outstanding", "superb",
    ),
    "zh": (
        "真棒", "太棒", "真好", "真行", "真厉害", "感人", "真是谢谢", "谢谢你们啊", "佩服",
        "666", "真是服务", "好样的", "真高效", "效率真高", "真是太好", "可真",
    ),
}  # fmt: skip

BAD_EVENTS: Mapping[str, tuple[str, ...]] = {
    "en": (
        "again", "crash*", "broke*", "broken", "lost", "losing", "late", "delay*",
        "cancel*", "still", "second time", "third time", "hours", "days", "weeks", "never",
        "wrong", "twice", "down", "fail*", "stuck", "missing", "damaged", "charged",
        "no one", "nobody", "nothing",
    ),
    "zh": (
        "又", "再次", "还是", "延误", "延迟", "丢", "坏", "第二次", "第三次", "小时", "崩",
        "闪退", "没到", "错了", "扣", "失败", "天了", "没人", "一直",
    ),
}  # fmt: skip

# A problem put right: praise or thanks with it means what it says.
FIXED: Mapping[str, tuple[str, ...]] = {
    "en": ("fixed", "solved", "sorted", "resolved", "works now", "working now", "arrived"),
    "zh": ("解决了", "修好了", "好了", "收到了", "到了"),
}

THANKS: Mapping[str, tuple[str, ...]] = {
    "en": ("thank*", "thx", "appreciate*"),
    "zh": ("谢谢", "感谢", "多谢"),
}

CONTRASTS: Mapping[str, tuple[str, ...]] = {
    "en": ("but", "however", "though", "yet", "still"),
    "zh": ("但", "可是", "不过", "还是", "却"),
}

# Polite phrases that hold a cue's characters (麻烦 holds 烦) and mean nothing felt.
POLITE: Mapping[str, tuple[str, ...]] = {
    "en": (),
    "zh": ("麻烦", "不好意思", "打扰", "不麻烦"),
}

# A plain question or request: how a message with no feeling in it usually starts or ends.
REQUESTS: Mapping[str, tuple[str, ...]] = {
    "en": (
        "how", "what", "when", "where", "which", "who", "why", "can", "could", "would",
        "will", "is", "are", "do", "does", "did", "please", "pls", "plz", "i'd like",
        "i would like", "i want to", "i need to", "i need", "kindly", "hi", "hello", "hey",
        "is it possible", "may i",
    ),
    "zh": (
        "请问", "麻烦", "怎么", "如何", "能不能", "能否", "可以", "帮我", "请", "我想",
        "需要", "在吗", "亲", "你好", "您好", "哪里", "什么时候", "多久", "是否",
    ),
}  # fmt: skip
