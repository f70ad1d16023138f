import pytest

from agent.emotion import LexiconRecognizer
from agent.emotion.labels import EKMAN_OF, LABELS
from agent.language import detect_language


@pytest.mark.parametrize(
    ("text", "ekman"),
    [
        ("This is ridiculous, I am furious!", "anger"),
        ("Thank you so much, that is wonderful", "joy"),
        ("I'm really worried and scared about my account", "fear"),
        ("I feel so sad and lonely today", "sadness"),
        ("气死我了，一个半小时也没上车", "anger"),
        ("我今天好开心啊", "joy"),
        ("我很担心，害怕出问题", "fear"),
        ("真的很难过，想哭", "sadness"),
        ("Please update my address", "neutral"),
    ],
)
def test_unambiguous_sentences(text: str, ekman: str) -> None:
    reading = LexiconRecognizer().read(text)
    assert EKMAN_OF[reading.dominant] == ekman
    assert set(reading.scores) == set(LABELS)
    assert sum(reading.scores.values()) == pytest.approx(1.0)


def test_negation_turns_a_positive_cue_negative() -> None:
    recognizer = LexiconRecognizer()
    assert recognizer.read("I am happy").valence > 0
    assert recognizer.read("I am not happy").valence < 0


def test_intensity_grows_with_emphasis() -> None:
    recognizer = LexiconRecognizer()
    calm = recognizer.read("I am angry")
    loud = recognizer.read("I am so angry!")
    assert loud.intensity >= calm.intensity
    assert loud.score("anger") > calm.score("anger")


@pytest.mark.parametrize(
    "text", ["", "   ", "🙂🙂", "ok 好的 thanks 谢谢", "\x00\ud7ff", "a" * 20000]
)
async def test_odd_and_mixed_text_never_fails(text: str) -> None:
    (reading,) = await LexiconRecognizer().read_batch([text])
    assert -1.0 <= reading.valence <= 1.0


def test_language_detection() -> None:
    assert detect_language("hello there") == "en"
    assert detect_language("你好，我想问一下") == "zh"
    assert detect_language("") == "en"
    assert detect_language("my order 订单 is late") == "en"
    assert detect_language("my 订单好像丢了") == "zh"
