"""The help-desk document: transcript, emotion trajectory, redaction, delivery id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.events import HandoffRequested
from agent.handoff.document import build_document, delivery_id_for, encode_document
from agent.values import EmotionReading, Exchange, Strategy

AT = 1_764_950_589.738


def reading(dominant: str, valence: float) -> EmotionReading:
    return EmotionReading(
        scores={dominant: 0.8, "neutral": 0.2},
        dominant=dominant,
        valence=valence,
        arousal=0.6,
        intensity=0.7,
        model="test",
    )


def request(**overrides: Any) -> HandoffRequested:
    values: dict[str, Any] = {
        "session_id": "s-1",
        "user_id": "customer-9",
        "tenant": "acme",
        "trigger": "rule",
        "reason": "angry three turns running",
        "turn_id": "t-3",
        "text": "this is ridiculous",
        "reading": reading("anger", -0.8),
        "at": AT,
    }
    return HandoffRequested(**(values | overrides))


HISTORY = (
    Exchange(
        text="where is my order",
        reply="Let me check that for you.",
        emotion=reading("confusion", -0.2),
        strategy=Strategy.INFORM,
    ),
    Exchange(text="it has been two weeks", reply="I'm sorry.", emotion=reading("annoyance", -0.5)),
)


def test_the_trigger_closes_the_transcript_after_the_stored_exchanges() -> None:
    document = build_document(request(), HISTORY, max_turns=50)
    assert document["transcript"] == [
        {"role": "user", "text": "where is my order"},
        {"role": "assistant", "text": "Let me check that for you.", "strategy": "inform"},
        {"role": "user", "text": "it has been two weeks"},
        {"role": "assistant", "text": "I'm sorry."},
        {"role": "user", "text": "this is ridiculous"},
    ]
    points = document["emotion_trajectory"]
    assert [(p["entry"], p["turn_id"], p["dominant"]) for p in points] == [
        (0, None, "confusion"),
        (2, None, "annoyance"),
        (4, "t-3", "anger"),
    ]
    assert points[2] == {
        "entry": 4,
        "turn_id": "t-3",
        "dominant": "anger",
        "valence": -0.8,
        "arousal": 0.6,
        "intensity": 0.7,
    }


def test_the_header_fields_come_from_the_request() -> None:
    document = build_document(request(trigger="takeover", agent="Dana"), (), max_turns=50)
    expected = {
        "id": delivery_id_for(request(trigger="takeover", agent="Dana")),
        "type": "handoff",
        "version": 1,
        "created_at": "2025-12-05T16:03:09.738Z",
        "tenant": "acme",
        "session_id": "s-1",
        "user_id": "customer-9",
        "turn_id": "t-3",
        "trigger": "takeover",
        "reason": "angry three turns running",
        "agent": "Dana",
        "history_missing": False,
    }
    assert {key: value for key, value in document.items() if key in expected} == expected


def test_a_trigger_already_stored_is_not_repeated() -> None:
    stored = (*HISTORY, Exchange(text="this is ridiculous", reply=""))
    document = build_document(request(), stored, max_turns=50)
    assert [entry["text"] for entry in document["transcript"]][-2:] == [
        "I'm sorry.",
        "this is ridiculous",
    ]
    assert len(document["transcript"]) == 5  # the empty reply is left out
    last = document["emotion_trajectory"][-1]
    assert (last["entry"], last["turn_id"], last["dominant"]) == (4, "t-3", "anger")


def test_a_takeover_without_a_message_ends_with_the_history() -> None:
    document = build_document(
        request(trigger="takeover", text=None, reading=None, turn_id=None, agent="Dana"),
        HISTORY,
        max_turns=50,
    )
    assert document["transcript"][-1] == {"role": "assistant", "text": "I'm sorry."}
    assert len(document["emotion_trajectory"]) == 2
    assert document["turn_id"] is None


def test_only_the_last_turns_are_sent() -> None:
    many = tuple(Exchange(text=f"message {n}", reply=f"reply {n}") for n in range(10))
    document = build_document(request(), many, max_turns=3)
    texts = [entry["text"] for entry in document["transcript"]]
    assert texts == [
        "message 7",
        "reply 7",
        "message 8",
        "reply 8",
        "message 9",
        "reply 9",
        "this is ridiculous",
    ]
    with pytest.raises(ValueError, match="max_turns"):
        build_document(request(), many, max_turns=0)


def test_every_text_is_redacted_once_more() -> None:
    leaky = (Exchange(text="mail me at ann@example.com", reply="Call 415-555-0132?"),)
    document = build_document(
        request(text="my card is 4111 1111 1111 1111", reason="asked by bob@example.org"),
        leaky,
        max_turns=50,
    )
    body = encode_document(document)
    assert "example.com" not in body
    assert "555-0132" not in body
    assert "4111" not in body
    assert "bob@" not in body
    assert [entry["text"] for entry in document["transcript"]] == [
        "mail me at [EMAIL]",
        "Call [PHONE]?",
        "my card is [CARD]",
    ]
    assert document["reason"] == "asked by [EMAIL]"


def test_a_missing_history_is_flagged() -> None:
    document = build_document(request(), (), max_turns=50, history_missing=True)
    assert document["history_missing"] is True
    assert document["transcript"] == [{"role": "user", "text": "this is ridiculous"}]


def test_the_delivery_id_is_stable_per_request() -> None:
    assert delivery_id_for(request()) == delivery_id_for(request())
    assert build_document(request(), (), max_turns=1)["id"] == delivery_id_for(request())
    others = {
        delivery_id_for(request(at=AT + 1)),
        delivery_id_for(request(session_id="s-2")),
        delivery_id_for(request(trigger="crisis")),
        delivery_id_for(request(tenant="other")),
        delivery_id_for(request(turn_id=None)),
    }
    assert len(others) == 5
    assert delivery_id_for(request()) not in others


def test_the_encoding_is_compact_utf8_json_that_round_trips() -> None:
    document = build_document(request(text="我很生气"), HISTORY, max_turns=50)
    body = encode_document(document)
    assert "我很生气" in body
    assert ", " not in body.split('"transcript"')[0]
    assert json.loads(body) == document
