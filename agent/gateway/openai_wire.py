"""The OpenAI chat-completions wire format, without I/O: the request, the turn's text,
and the completion, its stream chunks and the usage built from a turn's server messages.

Heartline keeps each user's conversation itself, so a request's new turn is its
last message, which must be the user's. The emotion reading and the decision ride
in a `heartline` field that OpenAI clients ignore (their models keep unknown
fields). Parameters that steer sampling (temperature, max_tokens, ...) are
accepted and left to the server's generator settings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from agent.events import MAX_TEXT_CHARS
from agent.gateway.protocol import ServerMessage

__all__ = [
    "MODEL_ID",
    "ChatRequest",
    "Completion",
    "Message",
    "StreamOptions",
    "estimate_tokens",
    "model_list",
]

MODEL_ID: Final = "heartline"
_CREATED: Final = 1_767_225_600  # when the model id was first served (2026-01-01)


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One message of the conversation the client sends (only the last one is read)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_TextPart | dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text: the string, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(part.text for part in parts if isinstance(part, _TextPart))


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


UserField = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions`: the fields Heartline reads; others are accepted."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": MODEL_ID,
                    "messages": [{"role": "user", "content": "My parcel never arrived."}],
                    "stream": True,
                    "user": "alice",
                }
            ]
        },
    )
    model: str = Field(description=f"`{MODEL_ID}` (GET /v1/models)")
    messages: Annotated[list[Message], Field(min_length=1, max_length=1000)]
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: UserField | None = Field(
        default=None,
        description="The end user this turn belongs to (with an API key); each user has "
        "one conversation and an emotional history. Without it, the request is a "
        "conversation of its own.",
    )
    n: StrictInt = Field(default=1, ge=1, le=1, description="Only 1.")

    def turn_text(self) -> str:
        """The new turn: the last message's text; raises `ValueError` saying what is wrong."""
        last = self.messages[-1]
        if last.role != "user":
            raise ValueError("the last message must be the user's (role 'user')")
        text = last.text()
        if not text.strip():
            raise ValueError("the last message has no text")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"the last message is longer than {MAX_TEXT_CHARS} characters")
        return text

    def prompt_text(self) -> str:
        return "\n".join(message.text() for message in self.messages)


def model_list() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": _CREATED, "owned_by": "heartline"}],
    }


def estimate_tokens(text: str) -> int:
    """A token count estimate: a CJK character is about one token, other text about four
    characters per token. Usage figures are estimates (generators do not report theirs)."""
    cjk = sum(1 for char in text if "\u3400" <= char <= "\u9fff")
    return cjk + math.ceil((len(text) - cjk) / 4)


def _gist(message: ServerMessage) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key not in ("type", "turn_id")}


@dataclass(slots=True)
class Completion:
    """One completion, built from its turn's server messages as they arrive.

    `feed` takes each message and returns the stream chunks it makes (none,
    one, or the final ones); `response` is the non-streamed completion once the
    turn ended. A reply that starts again (its worker died and another took the
    turn over) continues where the client's text stopped.
    """

    completion_id: str
    model: str
    session_id: str
    turn_id: str
    prompt_tokens: int
    include_usage: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    emotion: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    handoff: dict[str, Any] | None = None
    text: str = ""
    ended: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    _opened: bool = False
    _restart: str | None = None

    @property
    def done(self) -> bool:
        return self.ended is not None or self.error is not None

    def feed(self, message: ServerMessage) -> list[dict[str, Any]]:
        kind = message.get("type")
        if kind == "emotion":
            self.emotion = _gist(message)
        elif kind == "decision":
            self.decision = _gist(message)
        elif kind == "handoff":
            self.handoff = _gist(message)
        elif kind == "reply_start":
            if self._opened:
                self._restart = ""
            return self._open()
        elif kind == "reply_delta":
            return [*self._open(), *self._content(str(message["text"]))]
        elif kind == "reply_end":
            self.ended = _gist(message)
            return [*self._open(), *self._finish()]
        elif kind == "error":
            self.error = {"message": message.get("message", ""), "code": message.get("code")}
        return []

    def _open(self) -> list[dict[str, Any]]:
        if self._opened:
            return []
        self._opened = True
        delta = {"role": "assistant", "content": ""}
        return [self._chunk(delta, None, heartline=self._heartline())]

    def _content(self, piece: str) -> list[dict[str, Any]]:
        if self._restart is not None:  # skip what the client already has
            self._restart += piece
            if len(self._restart) <= len(self.text):
                return []
            piece, self._restart = self._restart[len(self.text) :], None
        self.text += piece
        return [self._chunk({"content": piece}, None)]

    def _finish(self) -> list[dict[str, Any]]:
        chunks = [self._chunk({}, "stop", heartline=self._ending())]
        if self.include_usage:
            chunk = self._chunk({}, None)
            chunk["choices"] = []
            chunk["usage"] = self.usage()
            chunks.append(chunk)
        return chunks

    def _heartline(self) -> dict[str, Any]:
        extension: dict[str, Any] = {"session_id": self.session_id, "turn_id": self.turn_id}
        if self.emotion is not None:
            extension["emotion"] = self.emotion
        if self.decision is not None:
            extension["decision"] = self.decision
        if self.handoff is not None:
            extension["handoff"] = self.handoff
        return extension

    def _ending(self) -> dict[str, Any]:
        ended = self.ended or {}
        extension = {key: ended.get(key) for key in ("generator", "interrupted", "ttft_ms")}
        if self.handoff is not None:
            extension["handoff"] = self.handoff
        return extension

    def _chunk(
        self, delta: dict[str, Any], finish: str | None, *, heartline: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if heartline is not None:
            chunk["heartline"] = heartline
        return chunk

    def usage(self) -> dict[str, int]:
        completion = estimate_tokens(self.final_text())
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def final_text(self) -> str:
        return str((self.ended or {}).get("text", self.text))

    def response(self) -> dict[str, Any]:
        """The `chat.completion` object of the ended turn."""
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.final_text(), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(),
            "heartline": {**self._heartline(), **self._ending()},
        }
