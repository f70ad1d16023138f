"""The curated crisis phrase lists `policies.safety` matches, and the look-alikes it ignores.

Data only. Every pattern is a regular expression over *normalized* text:
NFKC, case-folded, curly apostrophes made straight, whitespace collapsed,
spaces between Chinese characters removed and common traditional characters
mapped to simplified ones (`policies.safety` does that), so a pattern is
written once, in lower case and simplified Chinese.

A term's match is dropped when a negation directly governs it ("I'm not
suicidal", "我不会自杀") unless the term is `negatable=False`: phrases whose
wording is already negative ("no reason to live", "不想活") or whose
negation is the crisis ("not sure I want to live anymore").

`LOOK_ALIKES` are idioms that contain a crisis word but mean something
else ("career suicide", "跳楼价", "想死你了"); they are blanked out before
the terms are matched. The Chinese "X死了" intensifiers (笑死我了, 累死了,
气死我了) need no entry: no term matches a bare 死.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.language import Language

__all__ = [
    "DEFAULT_TERMS",
    "LOOK_ALIKES",
    "TRADITIONAL_TO_SIMPLIFIED",
    "CrisisCategory",
    "CrisisTerm",
]


class CrisisCategory(StrEnum):
    SELF_HARM = "self_harm"
    HARM_TO_OTHERS = "harm_to_others"


@dataclass(frozen=True, slots=True, kw_only=True)
class CrisisTerm:
    """One crisis phrase: a regex over normalized text, its category and its language."""

    category: CrisisCategory
    language: Language
    pattern: str
    negatable: bool = True

    def __post_init__(self) -> None:
        if self.language not in ("en", "zh"):
            raise ValueError(f"language must be 'en' or 'zh', not {self.language!r}")
        if not self.pattern:
            raise ValueError("a crisis pattern must not be empty")


def _terms(
    category: CrisisCategory, language: Language, *patterns: str, negatable: bool = True
) -> tuple[CrisisTerm, ...]:
    return tuple(
        CrisisTerm(category=category, language=language, pattern=p, negatable=negatable)
        for p in patterns
    )


_SELF = CrisisCategory.SELF_HARM
_OTHERS = CrisisCategory.HARM_TO_OTHERS

# People a threat can be aimed at: pronouns, or a determiner, an optional word, a person noun.
_PEOPLE = (
    r"(?:him|her|them|you|u|y'?all|you\s+all|someone|somebody|anyone|anybody|every(?:one|body)"
    r"|people|(?:my|your|his|her|their|the|that|this|those|these)\s+(?:\w+\s+)?"
    r"(?:wife|husband|boss|manager|neighbou?rs?|mom|mum|mother|dad|father|brother|sister|son"
    r"|daughter|kids?|children|family|ex|boyfriend|girlfriend|partner|co-?workers?|colleagues?"
    r"|landlord|teacher|classmates?|guy|man|woman|driver|courier|agent|staff|employees?|ceo"
    r"|cashier|owner|rep|representative))\b"
    # "kill the agent process" is an operator's chore, not a threat.
    r"(?!\s+(?:process|service|daemon|job|task|thread|pod|container|session|app)\b)"
)
# First-person intent: "I'm going to", "we'll", "I really want to", "i'm gonna".
_I_INTEND = (
    r"\b(?:(?:i|we)(?:\s+am|'m|m|\s+are|'re)?\s+(?:(?:really|seriously|just|so|totally)\s+)?"
    r"(?:going\s+to|gonna|will|want\s+to|wanna|about\s+to|plan(?:ning)?\s+to|might|ready\s+to)"
    r"|(?:i|we)'ll)\s+(?:(?:really|fucking|fkn|just)\s+)?"
)
# What follows "shoot him" when it means sending something, not firing.
_NOT_A_MESSAGE = (
    r"(?!\s+(?:over|back|off)\b|\s+(?:an?|some|the|my|our|this|that)\s+(?:\w+\s+)?"
    r"(?:e-?mail|message|msg|text|note|line|dm|pm|link|invite|reminder|update|file|details|info"
    r"|quote|reply|call|ping)s?\b)"
)
_PLACES = (
    # Not "class", "exam" or "bar": to bomb those is to fail them.
    r"(?:the|a|my|our|your|this|that|their|his|her)\s+(?:\w+\s+)?(?:school|office|church|mosque"
    r"|synagogue|temple|mall|store|shop|building|campus|classroom|workplace|station|airport"
    r"|plane|train|hospital|headquarters|hq|bank|factory|warehouse|house|embassy|stadium"
    r"|restaurant)s?\b"
)

_SELF_HARM_EN = _terms(
    _SELF,
    "en",
    r"\b(?:kill|killing|killed|unalive|unaliving|hang|hanging|hanged)\s+my\s?self\b",
    r"\b(?:end|ending|take|taking)\s+my\s+(?:own\s+)?life\b"
    r"(?!\s+(?:savings|insurance|policy|story|cover)\b)",
    r"\bend(?:ing)?\s+it\s+all\b(?!\s+with\b)",
    r"\bsuicid(?:e|es|al)\b",
    r"\b(?:want(?:ed)?\s+to|wanna)\s+die\b",
    r"\bwish\s+i\s+(?:was|were)\s+dead\b",
    r"\bwish\s+i\s+(?:had|'d|was|were)\s+never\s+(?:been\s+)?born\b",
    r"\bbetter\s+off\s+(?:dead|without\s+me)\b",
    r"\b(?:cut|cutting|hurting|harming|burning|starving)\s+my\s?self\b",
    r"\b(?:want\s+to|wanna|going\s+to|gonna|urge\s+to|thinking\s+(?:of|about)|keep)\s+"
    r"(?:hurt|harm|burn|starve)(?:ing)?\s+my\s?self\b",
    r"\bself[-\s]?harm(?:ing)?\b",
    r"\boverdos(?:e|ed|es|ing)\b",
    r"\b(?:take|taking|took|swallow|swallowed|swallowing)\s+(?:all\s+(?:of\s+)?(?:my|the)"
    r"|a\s+(?:whole\s+)?bottle\s+of|a\s+handful\s+of)\s+(?:\w+\s+)?(?:pills|tablets|meds)\b",
    r"\bslit(?:ting)?\s+my\s+(?:wrists?|throat)\b",
    r"\bjump(?:ing)?\s+(?:off|from|in\s+front\s+of)\s+(?:a|the|my)\s+"
    r"(?:bridge|roof|building|balcony|cliff|train|tower)\b",
)
_SELF_HARM_EN_NEGATIVE = _terms(
    _SELF,
    "en",
    r"\b(?:do\s*n'?t|do\s+not|no\s+longer)\s+want\s+to\s+(?:live|be\s+alive|exist|go\s+on)"
    r"(?=\s*(?:any\s?more|any\s+longer|$|[.!?,;]))",
    r"\bwant\s+to\s+(?:live|be\s+alive|exist|go\s+on)\s+any\s?(?:more|longer)\b",
    r"\bno\s+(?:reason|point)\s+(?:to|in)\s+(?:live|living|going\s+on|being\s+alive)\b",
    r"\bnothing\s+(?:left\s+)?to\s+live\s+for\b",
    r"\bnot\s+worth\s+living\b(?!\s+with\b)",
    r"\bisn'?t\s+worth\s+living\b(?!\s+with\b)",
    negatable=False,
)
_HARM_TO_OTHERS_EN = _terms(
    _OTHERS,
    "en",
    _I_INTEND + r"(?:kill|murder|stab|strangle|choke|hurt|beat\s+up|slaughter)\s+" + _PEOPLE,
    # "I'll shoot you an email" is not a threat; "I'll shoot him" is.
    _I_INTEND + r"shoot\s+" + _PEOPLE + _NOT_A_MESSAGE,
    r"\bshoot\s+up\s+" + _PLACES,
    r"\b(?:bomb|blow\s+up|burn\s+down|torch|set\s+fire\s+to)\s+" + _PLACES,
    r"\b(?:plant|build|make|set\s+off|detonate)\s+(?:a|the)\s+bomb\b(?![-\w])",
    r"\bwant\s+(?:him|her|them|you)\s+(?:all\s+)?dead\b",
)

_SELF_HARM_ZH = _terms(
    _SELF,
    "zh",
    # 想死 but not 死磕 (persist), 死党 (best friend), 死机 (crash), 思想死板 (rigid) and the
    # like; 死心 (give up hope) stays in, as "我好想死心里好难受" has no comma to tell them apart.
    r"想(?:要)?(?:去)?死(?!磕|守|缠|扛|撑|板|角|党|机|穴|锁|结)",
    r"(?:巴不得|恨不得)(?:去)?死",
    r"自杀|自尽|寻死",
    r"(?<![年减较很更太变看])轻生(?![活产理物])",
    r"结束(?:掉)?(?:自己|我)?的?生命(?!周期)",
    r"了结(?:掉)?(?:自己|我)|自我了断|了断自己",
    r"割腕|上吊|卧轨|自残|伤害自己(?!的)",
    r"跳楼(?!价|大?甩卖|大?清仓|大?促销|大?减价|打折|亏本|甩货|机)",
    r"(?:想|要|准备|打算|去)(?:跳河|跳江|跳海|跳桥)",
    r"(?:吞|吃)了?(?:一整?瓶|一把|很多|好多|大量|所有的?)(?:安眠药|药)",
    r"死了算了|不如死了|一死了之|死了一了百了|活够了",
)
_SELF_HARM_ZH_NEGATIVE = _terms(
    _SELF,
    "zh",
    r"不想活",
    r"活不下去",
    r"活着(?:真|好|太|也|都)?(?:没|没有)(?:什么)?(?:意思|意义|希望|盼头)",
    r"活着(?:还)?有什么(?:意思|意义|用)",
    r"没有?(?:了)?(?:继续)?活下去的(?:理由|意义|勇气|动力|希望)",
    negatable=False,
)
_HARM_TO_OTHERS_ZH = _terms(
    _OTHERS,
    "zh",
    # Not 秒杀 (flash sale, "crushes"), 抹杀 / 扼杀 (stifle), 封杀 (ban); not "砍了他们的预算".
    r"(?<![秒抹扼封])杀(?:了|掉|死)?(?:他|她|你)(?!们?的)",
    r"(?:要|想|去|准备|真想|我)杀人|杀了人",
    # Not "这东西会毒死人" or "能弄死人": a complaint about a product, not a threat.
    r"(?:砍|捅|弄|掐|打)死(?:他|她|你)(?!们?(?:也|都|的))|(?:砍|捅|掐)死人",
    r"(?:要|想|准备)毒死(?:他|她|你)",
    r"(?:砍|捅)(?:了|伤)?(?:他|她|你|人)(?!们?的)",
    r"报复社会|同归于尽",
    r"炸(?:了|掉|毁|平)?(?:你们|他们|这家|那家)?的?"
    r"(?:学校|公司|大楼|商场|医院|车站|机场|银行|办公室|总部|工厂)",
    r"放火|纵火",
    r"要(?:他|她|你)(?:们)?的命",
)

DEFAULT_TERMS: tuple[CrisisTerm, ...] = (
    *_SELF_HARM_EN,
    *_SELF_HARM_EN_NEGATIVE,
    *_HARM_TO_OTHERS_EN,
    *_SELF_HARM_ZH,
    *_SELF_HARM_ZH_NEGATIVE,
    *_HARM_TO_OTHERS_ZH,
)

LOOK_ALIKES: tuple[str, ...] = (
    # English figures of speech around suicide, overdose, dying and cutting.
    r"\b(?:career|political|social|commercial|professional|financial|brand|corporate"
    r"|electoral|economic|fashion)\s+suicide\b",
    r"\bsuicide\s+(?:squad|doors?|mission|runs?|sprints?|drills?|king|blonde|seat|knob|lane)\b",
    r"\b(?:caffeine|coffee|sugar|chocolate|cuteness|information|nostalgia|drama|netflix|carbs?"
    r"|candy|anime|tv)\s+overdose\b",
    r"\boverdos(?:e|ed|ing)\s+(?:on|of)\s+(?:caffeine|coffee|espresso|sugar|chocolate|cuteness"
    r"|netflix|nostalgia|information|drama|carbs?|candy|tv|anime|sunshine)\b",
    r"\bdie\s+(?:of|from)\s+(?:embarrassment|shame|boredom|laughter|laughing|cringe|envy"
    r"|jealousy|curiosity|happiness|excitement)\b",
    r"\b(?:die|died|dying)\s+laughing\b",
    r"\bdie\s+on\s+(?:this|that|a|the)\s+hill\b",
    r"\bhill\s+(?:that\s+)?i\s+(?:want\s+to|wanna|will|'ll|would|'d)\s+die\s+on\b",
    r"\b(?:accidentally|by\s+accident)\s+cut\s+my\s?self\b",
    r"\b(?:almost|nearly)\s+(?:killed|hurt)\s+my\s?self\s+(?:on|tripping|falling|slipping)\b",
    r"\bcut\s+my\s?self\s+(?:accidentally|by\s+accident|on\s+(?:the|a|your|its|their|this|that)"
    r"|opening|while|shaving|cooking|chopping|slicing)\b",
    r"\bkill\s+(?:\w+\s+){0,2}with\s+kindness\b",
    # Chinese: "I miss you to death", price-slash and business idioms, a party game.
    r"想死(?:你|您|我|他|她|它|大家)(?:们)?(?:了|啦|啊|喽)|把(?:我|人)?想死了?",
    r"自杀式(?:降价|营销|打法|操作|经营|竞争|定价|促销|投资)",
    r"杀人(?:游戏|诛心)|狼人杀|州官放火",
)

# Enough traditional characters to read the terms above in traditional Chinese.
TRADITIONAL_TO_SIMPLIFIED: dict[str, str] = {
    "殺": "杀", "樓": "楼", "輕": "轻", "結": "结", "殘": "残", "報": "报", "復": "复",
    "歸": "归", "於": "于", "盡": "尽", "藥": "药", "斷": "断", "們": "们", "個": "个",
    "沒": "没", "會": "会", "讓": "让", "傷": "伤", "義": "义", "麼": "么", "這": "这",
    "裡": "里", "彈": "弹", "燒": "烧", "縱": "纵", "車": "车", "機": "机", "場": "场",
    "銀": "银", "廠": "厂", "學": "学", "醫": "医", "辦": "办", "價": "价", "賣": "卖",
    "減": "减", "還": "还", "為": "为", "氣": "气", "餓": "饿", "熱": "热", "說": "说",
    "頭": "头", "寧": "宁", "願": "愿",
}  # fmt: skip
