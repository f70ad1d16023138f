"""What `heartline chat` prints for the messages of a person taking the conversation over."""

from __future__ import annotations

import io

from agent.chat import ChatView


def _shown(*messages: dict[str, object]) -> str:
    out = io.StringIO()
    view = ChatView(out=out, styled=False)
    for message in messages:
        view.show(message)
    return out.getvalue()


def test_a_person_joins_speaks_and_leaves() -> None:
    printed = _shown(
        {"type": "takeover", "agent": "dana", "active": True},
        {"type": "emotion", "turn_id": "t2", "dominant": "neutral", "valence": 0.0, "arousal": 0.1},
        {
            "type": "reply_end",
            "turn_id": "t2",
            "text": "",
            "interrupted": False,
            "generator": "human",
            "ttft_ms": 1.0,
        },
        {"type": "agent_message", "id": "a1", "agent": "dana", "text": "Hi, Dana here."},
        {"type": "takeover", "agent": "dana", "active": False},
    )
    assert printed.splitlines() == [
        "  dana joined the conversation",
        "  emotion: neutral (valence +0.00, arousal 0.10)",
        "dana> Hi, Dana here.",
        "  dana left; the bot answers again",
    ]
