"""Frames written during one turn of the event loop leave in one write, at its end."""

from __future__ import annotations

import asyncio

__all__ = ["Outbox"]


class Outbox:
    """Coalesces a connection's frames: one system call per loop turn, not one per frame.

    The flush is scheduled with `call_soon`, so a frame waits at most for the
    callbacks already due: no timer, no added latency worth the name. A writer
    that does not yield to the loop is flushed every `flush_bytes`, so the
    transport's own flow control (`pause_writing`) still sees it.
    """

    __slots__ = ("_flush_bytes", "_frames", "_loop", "_scheduled", "_size", "_transport")

    def __init__(self, transport: asyncio.WriteTransport, *, flush_bytes: int = 64 * 1024) -> None:
        self._transport = transport
        self._flush_bytes = flush_bytes
        self._loop = asyncio.get_running_loop()
        self._frames: list[bytes] = []
        self._size = 0
        self._scheduled = False

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel (the transport's and ours)."""
        return self._size + self._transport.get_write_buffer_size()

    def write(self, frame: bytes) -> None:
        if self._transport.is_closing():
            return
        self._frames.append(frame)
        self._size += len(frame)
        if self._size >= self._flush_bytes:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand what is queued to the transport now (a scheduled flush then finds none)."""
        self._scheduled = False
        frames, self._frames, self._size = self._frames, [], 0
        if frames and not self._transport.is_closing():
            self._transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
