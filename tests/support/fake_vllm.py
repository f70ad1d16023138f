"""A local HTTP/1.1 server that streams chat completions byte for byte like vLLM.

No vLLM can run in the test environment, so this reproduces what `vllm serve`
(FastAPI on uvicorn) puts on the wire for `POST /v1/chat/completions` with
`stream: true`: uvicorn's status line and headers, chunked transfer encoding
with one HTTP chunk per server-sent event, vLLM's chunk JSON (pydantic's
compact `model_dump_json(exclude_unset=True)`, non-ASCII unescaped), the final
usage chunk with empty `choices` when `stream_options.include_usage` is set,
`data: [DONE]`, error bodies (`{"error": {...}}`, or the older bare
`{"object": "error", ...}`) and error events mid-stream.

Each request takes the next `Script` queued with `script(...)` (or `default`
once the queue is empty), which decides how the response misbehaves: slow
first token, slow or stalled tokens, truncation, an error status, an error
event, a never-ending stream. Every request is recorded (`Received`: the
parsed JSON body, the headers, whether and when the client hung up, how many
tokens were sent), so tests can assert on what the client sent and on its
disconnecting.

Raw `asyncio.start_server`, so every byte is under the test's control.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

__all__ = ["FakeVllm", "Received", "Script"]

# A stalled or never-ending response gives up after this long, so a broken test
# cannot hang the server's shutdown.
_HANG_S = 30.0
_CREATED = 1732000000


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """How the server answers one request.

    Token counts (`stall_after`, `truncate_after`, `error_after`) count content
    deltas already sent; 0 means right after the role chunk.
    """

    tokens: tuple[str, ...] = ("Hello", ",", " how", " are", " you", "?")
    # Refuse before streaming: this status with vLLM's error body.
    status: int = 200
    error_message: str = "simulated failure"
    error_type: str | None = None  # default: vLLM's name for the status
    legacy_errors: bool = False  # the older bare {"object": "error", ...} shape
    # Timing (seconds)
    first_token_delay: float = 0.0  # before the role chunk (sent with the first token)
    token_delay: float = 0.0  # before each later token
    # Misbehaviour
    stall_after: int | None = None  # then send nothing, connection open, until hung up
    truncate_after: int | None = None  # then end the response without [DONE]
    abrupt: bool = True  # truncation drops the TCP connection (else a clean chunked end)
    error_after: int | None = None  # then an error event and [DONE]
    endless: bool = False  # cycle through the tokens until the client hangs up
    fragment: int | None = None  # split every event into HTTP chunks of this many bytes
    burst: bool = False  # hold every event back and send the whole stream in one write
    # Reported numbers
    finish_reason: str = "stop"
    prompt_tokens: int = 17


@dataclass(slots=True, kw_only=True)
class Received:
    """One request as the server saw it, and what became of its response."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    connection: int  # which TCP connection carried it (1, 2, ...)
    tokens_sent: int = 0
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected_at: float | None = None  # time.monotonic()

    def hang_up(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected_at = time.monotonic()
            self.disconnected.set()


class _ClientGone(Exception):
    pass


class FakeVllm:
    """`async with FakeVllm(model=...) as server:` listens on 127.0.0.1, port 0.

    `path_prefix` serves the API under a prefix (`/llm/v1/chat/completions`), as a
    reverse proxy in front of vLLM does; `base_url` then includes it. A long-running
    server (a benchmark's upstream) passes `keep_requests=False` so `requests` stays empty.
    """

    def __init__(
        self,
        *,
        model: str = "test-model",
        api_key: str | None = None,
        path_prefix: str = "",
        port: int = 0,
        keep_requests: bool = True,
    ) -> None:
        self.model = model
        self.api_key = api_key
        self.path_prefix = path_prefix
        self._port = port
        self._keep_requests = keep_requests
        self.default = Script()
        self.requests: list[Received] = []
        self.connections = 0
        self._scripts: deque[Script] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._ids = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "enter the server first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    def script(self, *scripts: Script) -> None:
        """Queue how the next requests are answered, in order."""
        self._scripts.extend(scripts)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self._port, backlog=1024
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        self._server = None

    # -- one connection ------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        connection = self.connections
        try:
            while await self._serve_one(reader, writer, connection):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, _ClientGone):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int
    ) -> bool:
        """Answer one request; whether the connection stays open for another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle keep-alive connection
        request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        method, path, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = json.loads(raw) if raw else {}
        received = Received(
            method=method, path=path, headers=headers, body=body, connection=connection
        )
        if self._keep_requests:
            self.requests.append(received)
        script = self._scripts.popleft() if self._scripts else self.default

        if path != f"{self.path_prefix}/v1/chat/completions":
            await self._write_json(writer, HTTPStatus.NOT_FOUND, {"detail": "Not Found"})
            return True
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._write_json(writer, HTTPStatus.UNAUTHORIZED, {"error": "Unauthorized"})
            return True
        if body.get("model") != self.model:
            message = f"The model `{body.get('model')}` does not exist."
            error = self._error(HTTPStatus.NOT_FOUND, message, "NotFoundError", legacy=False)
            error["error"]["param"] = "model"
            await self._write_json(writer, HTTPStatus.NOT_FOUND, error)
            return True
        if script.status != 200:
            status = HTTPStatus(script.status)
            error_type = script.error_type or _error_type(status)
            error = self._error(status, script.error_message, error_type, script.legacy_errors)
            await self._write_json(writer, status, error)
            return True
        return await self._stream(reader, writer, script, received)

    # -- responses -----------------------------------------------------------

    async def _write_json(
        self, writer: asyncio.StreamWriter, status: HTTPStatus, content: dict[str, Any]
    ) -> None:
        """Starlette's JSONResponse behind uvicorn."""
        payload = _compact(content).encode()
        writer.write(
            _status_line(status)
            + f"content-length: {len(payload)}\r\ncontent-type: application/json\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        script: Script,
        received: Received,
    ) -> bool:
        """Starlette's StreamingResponse of vLLM's event generator, watched for a hang-up."""
        writer.write(
            _status_line(HTTPStatus.OK)
            + b"content-type: text/event-stream; charset=utf-8\r\n"
            + b"transfer-encoding: chunked\r\n\r\n"
        )
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(self._watch(reader, received))
            try:
                keep_open = await self._events(writer, script, received)
            except (ConnectionError, _ClientGone):
                received.hang_up()
                keep_open = False
            finally:
                watcher.cancel()
        if not keep_open:
            raise _ClientGone
        return True

    async def _events(
        self, writer: asyncio.StreamWriter, script: Script, received: Received
    ) -> bool:
        """Write the events; whether the response ended cleanly (the connection may be reused)."""
        self._ids += 1
        request_id = f"chatcmpl-{self._ids:032x}"
        include_usage = bool((received.body.get("stream_options") or {}).get("include_usage"))

        held = bytearray()

        async def send(data: str) -> None:
            event = f"data: {data}\n\n".encode()
            if script.burst and data != "[DONE]":
                held.extend(event)
                return
            await self._send_event(writer, bytes(held) + event, script, received)

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            return _compact(
                {
                    "id": request_id,
                    "object": "chat.completion.chunk",
                    "created": _CREATED,
                    "model": self.model,
                    "choices": choices,
                    **extra,
                }
            )

        def delta(content: str, finish_reason: str | None = None) -> str:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            if finish_reason is not None:
                choice["stop_reason"] = None
            return chunk([choice])

        await self._pause(script.first_token_delay, received)
        role = {"role": "assistant", "content": ""}
        await send(chunk([{"index": 0, "delta": role, "logprobs": None, "finish_reason": None}]))
        sent = 0
        while script.endless or sent < len(script.tokens):
            if sent == script.stall_after:
                await self._pause(_HANG_S, received)
            if sent == script.truncate_after:
                return self._truncate(writer, script)
            if sent == script.error_after:
                await send(self._stream_error(script))
                await send("[DONE]")
                return await self._end(writer)
            if sent:
                await self._pause(script.token_delay, received)
            await send(delta(script.tokens[sent % len(script.tokens)]))
            sent += 1
            received.tokens_sent = sent
        if sent == script.truncate_after:
            return self._truncate(writer, script)
        await send(delta("", script.finish_reason))
        if include_usage:
            completion = sent + 1  # the end-of-sequence token counts
            usage = {
                "prompt_tokens": script.prompt_tokens,
                "total_tokens": script.prompt_tokens + completion,
                "completion_tokens": completion,
            }
            await send(chunk([], usage=usage))
        await send("[DONE]")
        return await self._end(writer)

    async def _send_event(
        self, writer: asyncio.StreamWriter, event: bytes, script: Script, received: Received
    ) -> None:
        if received.disconnected.is_set() or writer.transport.is_closing():
            raise _ClientGone  # (uvloop refuses writes to a closed transport)
        size = script.fragment or len(event)
        for start in range(0, len(event), size):
            piece = event[start : start + size]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()

    async def _end(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    def _truncate(self, writer: asyncio.StreamWriter, script: Script) -> bool:
        if script.abrupt:
            writer.transport.abort()
        else:
            writer.write(b"0\r\n\r\n")
        return False

    def _stream_error(self, script: Script) -> str:
        """vLLM's `create_streaming_error_response`: `json.dumps`, so with spaces."""
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        error_type = script.error_type or _error_type(status)
        error = self._error(status, script.error_message, error_type, script.legacy_errors)
        if script.legacy_errors:
            error = {"error": error}
        return json.dumps(error)

    @staticmethod
    def _error(status: HTTPStatus, message: str, error_type: str, legacy: bool) -> dict[str, Any]:
        info: dict[str, Any] = {"message": message, "type": error_type, "param": None}
        info["code"] = status.value
        if legacy:
            return {"object": "error", **info}
        return {"error": info}

    async def _pause(self, seconds: float, received: Received) -> None:
        """Sleep (at least a loop turn), but stop at once when the client hangs up."""
        if seconds <= 0:
            await asyncio.sleep(0)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await received.disconnected.wait()
        if received.disconnected.is_set():
            raise _ClientGone

    @staticmethod
    async def _watch(reader: asyncio.StreamReader, received: Received) -> None:
        """While a response streams, the client sends nothing: end of input is a hang-up."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        received.hang_up()


def _compact(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def _status_line(status: HTTPStatus) -> bytes:
    """uvicorn's status line and its own headers."""
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"date: {formatdate(usegmt=True)}\r\n"
        "server: uvicorn\r\n"
    ).encode()


def _error_type(status: HTTPStatus) -> str:
    """The `type` vLLM puts in its error bodies for a status."""
    return {
        HTTPStatus.BAD_REQUEST: "BadRequestError",
        HTTPStatus.NOT_FOUND: "NotFoundError",
        HTTPStatus.TOO_MANY_REQUESTS: "RateLimitError",
        HTTPStatus.INTERNAL_SERVER_ERROR: "InternalServerError",
        HTTPStatus.SERVICE_UNAVAILABLE: "ServiceUnavailableError",
    }.get(status, status.phrase.replace(" ", "") + "Error")
