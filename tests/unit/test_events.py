import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import EventDecodeError
from agent.events import (
    Cancel,
    DecisionMade,
    EmotionRead,
    Feedback,
    ReplyDelta,
    ReplyEnded,
    UserTurn,
    decode,
    encode,
)
from agent.values import Action, Decision, EmotionReading, Strategy, Tone

ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
texts = st.text(max_size=200)
units = st.floats(min_value=0.0, max_value=1.0)


@given(session=ids, user=st.text(min_size=1, max_size=128), turn=ids, text=texts)
def test_user_turn_round_trips(session: str, user: str, turn: str, text: str) -> None:
    event = UserTurn(session_id=session, user_id=user, turn_id=turn, seq=3, text=text, sent_at=1.5)
    assert decode(encode(event)) == event


@given(score=units, valence=st.floats(min_value=-1.0, max_value=1.0), arousal=units)
def test_emotion_read_round_trips(score: float, valence: float, arousal: float) -> None:
    reading = EmotionReading(
        scores={"joy": score, "neutral": 1 - score},
        dominant="joy",
        valence=valence,
        arousal=arousal,
        intensity=score,
        model="m",
    )
    event = EmotionRead(session_id="s", turn_id="t", reading=reading)
    assert decode(encode(event)) == event


def test_every_kind_round_trips() -> None:
    decision = Decision(
        action=Action.HANDOFF,
        strategy=Strategy.DE_ESCALATE,
        tone=Tone.CALM,
        confidence=0.9,
        policy="rules:x",
        reasons=("a", "b"),
        propensity=0.25,
    )
    events = [
        DecisionMade(session_id="s", turn_id="t", decision=decision),
        ReplyDelta(session_id="s", turn_id="t", seq=0, text="Hi "),
        ReplyEnded(
            session_id="s",
            turn_id="t",
            text="Hi there",
            interrupted=True,
            generator="template",
            ttft_ms=1.0,
            total_ms=2.0,
            stages={"emotion": 0.1},
        ),
        Feedback(session_id="s", user_id="u", turn_id="t", score=5),
        Cancel(session_id="s", turn_id="t", reason="barge_in"),
    ]
    for event in events:
        assert decode(encode(event)) == event


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b"not json", "payload"),
        (b"[]", "payload"),
        (b'{"type": "nope", "v": 1}', "payload"),
        (b'{"type": "cancel", "v": 2, "session_id": "s", "turn_id": "t", "reason": "client"}', "v"),
        (b'{"type": "cancel", "v": 1, "session_id": "s", "reason": "client"}', "turn_id"),
        (b'{"type": "cancel", "v": 1, "session_id": "a/b", "turn_id": "t", "reason": "client"}',
         "session_id"),
        (b'{"type": "feedback", "v": 1, "session_id": "s", "user_id": "u", "turn_id": "t",'
         b' "score": "5"}', "score"),
        (b'{"type": "feedback", "v": 1, "session_id": "s", "user_id": "u", "turn_id": "t",'
         b' "score": 9}', "score"),
        (b'{"type": "cancel", "v": 1, "session_id": "s", "turn_id": "t", "reason": "client",'
         b' "extra": 1}', "extra"),
    ],
)  # fmt: skip
def test_invalid_payloads_raise_a_typed_error(payload: bytes, where: str) -> None:
    with pytest.raises(EventDecodeError, match=where):
        decode(payload)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decode_never_raises_anything_else(payload: bytes) -> None:
    with contextlib.suppress(EventDecodeError):
        decode(payload)


@given(st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=6))
def test_random_objects_are_rejected_cleanly(obj: dict[str, object]) -> None:
    with contextlib.suppress(EventDecodeError):
        decode(json.dumps({"type": "user_turn", "v": 1, **obj}))


def test_user_turn_signals_round_trip_and_are_validated() -> None:
    turn = UserTurn(
        session_id="s", user_id="u", turn_id="t", seq=1, text="hi", sent_at=0.0, signals={"joy": 1}
    )
    assert turn.signals == {"joy": 1.0}
    assert decode(encode(turn)) == turn
    older = b'{"type":"user_turn","v":1,"session_id":"s","user_id":"u","turn_id":"t","seq":1,'
    plain = decode(older + b'"text":"hi","sent_at":0.0}')
    assert isinstance(plain, UserTurn)
    assert plain.signals is None
    for bad in (b'{"rage":0.5}', b'{"joy":1.5}', b"{}"):
        with pytest.raises(EventDecodeError, match="signals"):
            decode(older + b'"text":"hi","sent_at":0.0,"signals":' + bad + b"}")
