"""A help desk's webhook receiver on 127.0.0.1: a plain HTTP/1.1 server for the tests.

Raw `asyncio.start_server`, so every byte is the test's to decide. Each request
takes the next `Reply` queued with `script(...)` (or `default` once the queue is
empty): a status, or a hang until the client gives up. A reply may also stop
the listener (`then_refuse`), so the next attempts find the port closed until
`resume()`. Every request is recorded raw (`Received`), and `on_request`, when
set, runs before the answer: while it runs the sender is waiting, so what it
reads of the sender's state cannot change under it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Self

__all__ = ["Received", "Reply", "WebhookReceiver"]

# A hanging reply gives up after this long, so a broken test cannot hang shutdown.
_HANG_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int = 200
    hang: bool = False  # send nothing until the client hangs up
    then_refuse: bool = False  # stop listening once this request arrives


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class WebhookReceiver:
    """`async with WebhookReceiver() as receiver:` listens on 127.0.0.1, port 0."""

    def __init__(self) -> None:
        self.default = Reply()
        self.requests: list[Received] = []
        self.on_request: Callable[[Received], Awaitable[None]] | None = None
        self._replies: deque[Reply] = deque()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hooks/heartline"

    def script(self, *replies: Reply) -> None:
        """Queue how the next requests are answered, in order."""
        self._replies.extend(replies)

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused until `resume`."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def resume(self) -> None:
        """Listen on the same port again."""
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.refuse()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
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
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        received = Received(method=method, path=path, headers=headers, body=body)
        self.requests.append(received)
        reply = self._replies.popleft() if self._replies else self.default
        if reply.then_refuse:
            self.refuse()
        if self.on_request is not None:
            await self.on_request(received)
        if reply.hang:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HANG_S):
                    await reader.read()  # returns at the client's hang-up
            return False
        payload = b'{"ok":true}' if 200 <= reply.status < 300 else b'{"error":"no"}'
        status = HTTPStatus(reply.status)
        writer.write(
            f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()
            + f"content-length: {len(payload)}\r\ncontent-type: application/json\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return True
