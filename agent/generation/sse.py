"""Server-sent events, and the chat-completion chunks vLLM sends in them (sans-I/O).

Two layers, neither of which touches a socket or a clock:

- `SseParser` turns bytes, in whatever pieces they arrive, into the `data` of
  each complete event (the WHATWG event-stream rules: LF, CRLF or CR line
  endings, `:` comment lines, multi-line `data:` fields joined with LF, other
  fields ignored, an unterminated event at the end of the stream dropped).
- `decode_chunk` turns one event's data into a typed item: a `ChunkDelta`
  (text, finish reason, usage), a `StreamError` (vLLM's error object, or a chunk
  we cannot read), or `DONE` for the `[DONE]` sentinel.

vLLM's stream for `stream: true, stream_options: {include_usage: true}`::

    data: {"id":"chatcmpl-…","object":"chat.completion.chunk",…,"choices":[{"index":0,
           "delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}
    data: {…"choices":[{"index":0,"delta":{"content":"Hel"},…,"finish_reason":null}]}
    data: {…"choices":[{"index":0,"delta":{"content":""},…,"finish_reason":"stop",…}]}
    data: {…"choices":[],"usage":{"prompt_tokens":9,"total_tokens":12,"completion_tokens":3}}
    data: [DONE]

and, when generation fails after the response started, an error event (the
current `{"error": {...}}` shape or the older bare `{"object": "error", ...}`)
followed by `data: [DONE]`.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

__all__ = [
    "DONE",
    "ChunkDelta",
    "Done",
    "SseParser",
    "StreamError",
    "StreamItem",
    "Usage",
    "decode_chunk",
]

# A line ends at CRLF, LF or a lone CR. A CR at the very end of the buffer may be
# the first half of a CRLF split across two reads, so it waits for the next one.
_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_BOM: Final = "\ufeff"


class SseParser:
    """Incremental event-stream parser: `feed` bytes, get the data of finished events.

    Only complete lines are decoded, so a UTF-8 character split between two
    reads is never cut; invalid UTF-8 becomes U+FFFD, as the standard says.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._first_line = True

    @property
    def pending(self) -> bool:
        """Whether bytes or `data` lines wait for the end of their event."""
        return bool(self._buffer or self._data)

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes from the stream; return the data of every event they complete."""
        self._buffer += chunk
        if b"\r" not in self._buffer:
            return self._feed_lf()
        events: list[str] = []
        start = 0
        for match in _LINE_END.finditer(self._buffer):
            if match.group() == b"\r" and match.end() == len(self._buffer):
                break  # perhaps half of a CRLF: decide on the next read
            event = self._take_line(bytes(self._buffer[start : match.start()]))
            if event is not None:
                events.append(event)
            start = match.end()
        del self._buffer[:start]
        return events

    def _feed_lf(self) -> list[str]:
        """`feed` for a buffer without CR, the usual case: its lines split at LF at once."""
        *lines, rest = self._buffer.split(b"\n")
        if not lines:
            return []
        self._buffer = rest
        events: list[str] = []
        for line in lines:
            event = self._take_line(bytes(line))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[str]:
        """End of stream: a buffered lone CR still ends its line; an unfinished event is dropped."""
        events = self.feed(b"\n") if self._buffer.endswith(b"\r") else []
        self._buffer.clear()
        self._data.clear()
        return events

    def _take_line(self, raw: bytes) -> str | None:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            line = line.removeprefix(_BOM)
        if not line:
            if not self._data:
                return None
            event = "\n".join(self._data)
            self._data.clear()
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        return None  # `event`, `id`, `retry` and unknown fields mean nothing to us


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts of one completion, from the final usage chunk."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkDelta:
    """What one chat-completion chunk adds: text, the finish reason, the usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError:
    """An error event from the server, or a chunk that is not a chat-completion chunk.

    `message` is the server's text (for logs at debug level; it may quote the request).
    """

    message: str
    type: str
    code: int | None = None


class Done(enum.Enum):
    """The `[DONE]` sentinel that ends every vLLM stream."""

    DONE = "[DONE]"


DONE: Final = Done.DONE

StreamItem: TypeAlias = ChunkDelta | StreamError | Done


def decode_chunk(data: str) -> StreamItem:
    """One event's data as a typed item; never raises on bad input."""
    if data.strip() == DONE.value:
        return DONE
    try:
        payload = json.loads(data)
    except ValueError:
        return _invalid("not JSON")
    if not isinstance(payload, dict):
        return _invalid("not a JSON object")
    error = _error_of(payload)
    if error is not None:
        return error
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return _invalid("no choices")
    text = ""
    finish_reason: str | None = None
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue  # we ask for one choice; any other is not ours
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            return _invalid("delta content is not a string")
        text += content or ""
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            finish_reason = reason
    usage = payload.get("usage")
    return ChunkDelta(text=text, finish_reason=finish_reason, usage=_usage_of(usage))


def _error_of(payload: dict[str, Any]) -> StreamError | None:
    """vLLM's `{"error": {...}}`, or the older bare `{"object": "error", ...}`."""
    body = payload.get("error")
    if body is None and payload.get("object") == "error":
        body = payload
    if body is None:
        return None
    if not isinstance(body, dict):
        return StreamError(message=str(body), type="error")
    code = body.get("code")
    return StreamError(
        message=str(body.get("message", "")),
        type=str(body.get("type") or "error"),
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def _usage_of(usage: object) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    counts = {
        key: usage.get(key) or 0 for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    if not all(isinstance(value, int) for value in counts.values()):
        return None
    return Usage(**counts)


def _invalid(why: str) -> StreamError:
    return StreamError(message=f"unreadable chunk: {why}", type="InvalidChunk")
