"""The wire protocol without I/O: frames in, typed messages or WireErrors out."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.emotion.labels import LABELS
from agent.events import (
    Cancel,
    DecisionMade,
    EmotionRead,
    Feedback,
    Handoff,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
    TurnFailed,
)
from agent.gateway.protocol import (
    MAX_TEXT_CHARS,
    CancelMessage,
    ErrorCode,
    FeedbackMessage,
    Hello,
    UserMessage,
    WireError,
    encode_message,
    error_message,
    event_message,
    feedback_ack,
    parse_frame,
    ready_message,
)
from agent.values import Action, Decision, EmotionReading, Strategy, Tone


class Ids(TypedDict):
    session_id: str
    turn_id: str


SESSION = "ab" * 16


def frame(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False)


def error_of(raw: str | bytes, *, max_bytes: int = 64 * 1024) -> WireError:
    with pytest.raises(WireError) as caught:
        parse_frame(raw, max_bytes=max_bytes)
    return caught.value


# Valid frames


def test_parses_each_client_message() -> None:
    assert parse_frame(frame(type="hello")) == Hello()
    assert parse_frame(frame(type="hello", token="a.b.c")) == Hello(token="a.b.c")
    assert parse_frame(frame(type="user_message", id="t-1", text="hi")) == UserMessage(
        id="t-1", text="hi"
    )
    assert parse_frame(frame(type="feedback", turn_id="t:1", score=5)) == FeedbackMessage(
        turn_id="t:1", score=5
    )
    assert parse_frame(frame(type="cancel")) == CancelMessage()


def test_user_message_may_carry_signals() -> None:
    signals = {"anger": 0.9, "fear": 0, "neutral": 1}
    message = parse_frame(frame(type="user_message", id="x", text="hi", signals=signals))
    expected = {"anger": 0.9, "fear": 0.0, "neutral": 1.0}
    assert message == UserMessage(id="x", text="hi", signals=expected)
    assert parse_frame(frame(type="user_message", id="x", text="hi", signals=None)) == UserMessage(
        id="x", text="hi"
    )
    every = dict.fromkeys(LABELS, 0.5)
    assert parse_frame(frame(type="user_message", id="x", text="hi", signals=every)) == UserMessage(
        id="x", text="hi", signals=every
    )


def test_invalid_signals_name_the_label_not_the_client_string() -> None:
    err = error_of(frame(type="user_message", id="x", text="hi", signals={"furious" * 50: 0.5}))
    assert "'signals'" in err.message
    assert "not a GoEmotions label" in err.message
    assert len(err.message) < 200


def test_accepts_text_at_the_limit_and_any_script() -> None:
    text = "好" * MAX_TEXT_CHARS
    message = parse_frame(frame(type="user_message", id="x", text=text))
    assert message == UserMessage(id="x", text=text)


def test_hello_token_may_be_null() -> None:
    assert parse_frame('{"type":"hello","token":null}') == Hello()


# Each error code


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "{", "[1, 2]", '"hello"', "42", "null", '{"type": NaN}', "[" * 100_0],
)
def test_bad_json(raw: str) -> None:
    assert error_of(raw).code is ErrorCode.BAD_JSON


def test_binary_frame_is_bad_json() -> None:
    assert error_of(b'{"type":"cancel"}').code is ErrorCode.BAD_JSON


def test_deep_nesting_is_bad_json_not_recursion_error() -> None:
    raw = '{"type":"cancel","x":' + "[" * 50_000 + "]" * 50_000 + "}"
    assert error_of(raw, max_bytes=1 << 20).code is ErrorCode.BAD_JSON


def test_duplicate_keys_are_bad_json() -> None:
    err = error_of('{"type":"cancel","type":"cancel"}')
    assert err.code is ErrorCode.BAD_JSON
    assert "duplicate" in err.message


def test_too_large_counts_utf8_bytes() -> None:
    raw = frame(type="user_message", id="x", text="é" * 600)  # 1200 bytes, ~640 chars
    assert len(raw) < 1000 < len(raw.encode())
    assert error_of(raw, max_bytes=1000).code is ErrorCode.TOO_LARGE
    assert error_of(b"x" * 1001, max_bytes=1000).code is ErrorCode.TOO_LARGE


def test_unknown_type() -> None:
    err = error_of(frame(type="launch_missiles"))
    assert err.code is ErrorCode.UNKNOWN_TYPE
    assert "launch_missiles" in err.message


TOO_MANY = {f"l{n}": 0 for n in range(29)}


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({}, "type"),
        ({"type": 3}, "type"),
        ({"type": "user_message", "text": "hi"}, "id"),
        ({"type": "user_message", "id": "x"}, "text"),
        ({"type": "user_message", "id": "x", "text": ""}, "text"),
        ({"type": "user_message", "id": "x", "text": "  \n"}, "text"),
        ({"type": "user_message", "id": "x", "text": 5}, "text"),
        ({"type": "user_message", "id": "x", "text": "a" * (MAX_TEXT_CHARS + 1)}, "text"),
        ({"type": "user_message", "id": "a/b", "text": "hi"}, "id"),
        ({"type": "user_message", "id": "", "text": "hi"}, "id"),
        ({"type": "user_message", "id": "x" * 65, "text": "hi"}, "id"),
        ({"type": "user_message", "id": 7, "text": "hi"}, "id"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": [0.5]}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {"rage": 0.5}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {"anger": 1.5}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {"anger": -0.1}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {"anger": "1"}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {"anger": True}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": {"anger": None}}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "signals": TOO_MANY}, "signals"),
        ({"type": "user_message", "id": "x", "text": "hi", "user_id": "u"}, "user_id"),
        ({"type": "feedback", "turn_id": "x", "score": 0}, "score"),
        ({"type": "feedback", "turn_id": "x", "score": 6}, "score"),
        ({"type": "feedback", "turn_id": "x", "score": 4.5}, "score"),
        ({"type": "feedback", "turn_id": "x", "score": True}, "score"),
        ({"type": "feedback", "turn_id": "x", "score": "5"}, "score"),
        ({"type": "feedback", "score": 5}, "turn_id"),
        ({"type": "cancel", "turn_id": "x"}, "turn_id"),
        ({"type": "hello", "token": ""}, "token"),
        ({"type": "hello", "token": 12}, "token"),
        ({"type": "hello", "token": "x" * 5000}, "token"),
    ],
)
def test_invalid_message_names_the_field(fields: dict[str, Any], field_name: str) -> None:
    err = error_of(json.dumps(fields))
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert f"'{field_name}'" in err.message


def test_lone_surrogate_in_text_is_invalid() -> None:
    err = error_of('{"type":"user_message","id":"x","text":"a\\ud800b"}')
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert "'text'" in err.message


def test_error_message_does_not_echo_long_client_strings() -> None:
    err = error_of(frame(type="x" * 10_000))
    assert len(err.message) < 200


# Property tests: nothing but a WireError ever escapes


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "user_message", "feedback", "cancel", "other"])},
    optional={
        "id": json_values,
        "text": json_values,
        "turn_id": json_values,
        "score": json_values,
        "token": json_values,
        "signals": json_values,
    },
)


def _parse_or_error(raw: str | bytes) -> None:
    outcome: object
    try:
        outcome = parse_frame(raw, max_bytes=4096)
    except WireError as exc:
        outcome = exc
    if isinstance(outcome, WireError):
        assert isinstance(outcome.code, ErrorCode)
        assert outcome.message
    else:
        assert isinstance(outcome, Hello | UserMessage | FeedbackMessage | CancelMessage)


@given(st.text())
def test_arbitrary_text_only_raises_wire_error(raw: str) -> None:
    _parse_or_error(raw)


@given(st.binary())
def test_arbitrary_bytes_only_raise_wire_error(raw: bytes) -> None:
    _parse_or_error(raw)


@given(json_values)
def test_arbitrary_json_only_raises_wire_error(value: Any) -> None:
    _parse_or_error(json.dumps(value))


@given(message_like)
def test_message_shaped_json_only_raises_wire_error(value: dict[str, Any]) -> None:
    _parse_or_error(json.dumps(value))


# Server messages


def reading() -> EmotionReading:
    return EmotionReading(
        scores={"joy": 0.7, "neutral": 0.3},
        dominant="joy",
        valence=0.6,
        arousal=0.5,
        intensity=0.7,
        model="tiny",
    )


def test_builders() -> None:
    assert ready_message(SESSION, "u1") == {
        "type": "ready",
        "session_id": SESSION,
        "user_id": "u1",
        "protocol": 1,
    }
    assert error_message(ErrorCode.BAD_JSON, "nope") == {
        "type": "error",
        "code": "bad_json",
        "message": "nope",
    }
    assert error_message("x", "m", turn_id="t")["turn_id"] == "t"
    assert feedback_ack("t") == {"type": "feedback_ack", "turn_id": "t"}
    err = WireError(ErrorCode.DUPLICATE_ID, "again", turn_id="t")
    assert error_message(err.code, err.message, turn_id=err.turn_id) == {
        "type": "error",
        "code": "duplicate_id",
        "message": "again",
        "turn_id": "t",
    }


def test_event_messages() -> None:
    ids: Ids = {"session_id": SESSION, "turn_id": "t1"}
    assert event_message(EmotionRead(**ids, reading=reading())) == {
        "type": "emotion",
        "turn_id": "t1",
        "dominant": "joy",
        "labels": ["joy"],
        "groups": ["joy"],
        "scores": {"joy": 0.7, "neutral": 0.3},
        "valence": 0.6,
        "arousal": 0.5,
        "intensity": 0.7,
        "model": "tiny",
    }
    decision = Decision(
        action=Action.REPLY,
        strategy=Strategy.CELEBRATE,
        tone=Tone.UPBEAT,
        confidence=0.9,
        policy="rules",
        reasons=("joy is high",),
        propensity=0.5,
    )
    assert event_message(DecisionMade(**ids, decision=decision)) == {
        "type": "decision",
        "turn_id": "t1",
        "action": "reply",
        "strategy": "celebrate",
        "tone": "upbeat",
        "policy": "rules",
        "reasons": ["joy is high"],
        "confidence": 0.9,
        "abstained": [],
    }
    assert event_message(ReplyStarted(**ids, generator="template")) == {
        "type": "reply_start",
        "turn_id": "t1",
        "generator": "template",
    }
    assert event_message(ReplyDelta(**ids, seq=0, text="Hi")) == {
        "type": "reply_delta",
        "turn_id": "t1",
        "seq": 0,
        "text": "Hi",
    }
    ended = ReplyEnded(
        **ids,
        text="Hi there",
        interrupted=False,
        generator="template",
        ttft_ms=1.5,
        total_ms=3.0,
        stages={"emotion": 1.0},
    )
    assert event_message(ended) == {
        "type": "reply_end",
        "turn_id": "t1",
        "text": "Hi there",
        "interrupted": False,
        "generator": "template",
        "ttft_ms": 1.5,
        "total_ms": 3.0,
        "stages": {"emotion": 1.0},
    }
    assert event_message(Handoff(**ids, reason="asked for a human")) == {
        "type": "handoff",
        "turn_id": "t1",
        "reason": "asked for a human",
    }
    assert event_message(TurnFailed(**ids, code="generation", message="try again")) == {
        "type": "error",
        "code": "generation",
        "message": "try again",
        "turn_id": "t1",
    }
    assert event_message(Cancel(**ids, reason="client")) is None
    assert event_message(Feedback(**ids, user_id="u", score=5)) is None


def test_encode_message_is_compact_utf8_json() -> None:
    encoded = encode_message({"type": "reply_delta", "text": "你好"})
    assert encoded == '{"type":"reply_delta","text":"你好"}'.encode()
    escaped = encode_message({"text": "a\ud800"})
    assert json.loads(escaped) == {"text": "a\ud800"}


def test_infinite_timings_become_null() -> None:
    ended = ReplyEnded(
        session_id=SESSION,
        turn_id="t",
        text="",
        interrupted=True,
        generator="g",
        ttft_ms=float("inf"),
        total_ms=1.0,
    )
    message = event_message(ended)
    assert message is not None
    assert message["ttft_ms"] is None
    assert json.loads(encode_message(message))["ttft_ms"] is None
