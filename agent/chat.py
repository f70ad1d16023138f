"""`heartline chat`: a terminal client that streams replies and shows the emotion read.

Lines typed are sent as `user_message`; typing while a reply streams
interrupts it (barge-in). `/good` and `/bad` rate the last reply, `/cancel`
stops the reply in flight, `/quit` (or end of input) leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["ChatView", "chat"]

_HELP = "Type a message. /good or /bad rates the last reply, /cancel stops it, /quit leaves."


@dataclass
class ChatView:
    """Turns server messages into terminal lines; `styled` adds ANSI colours."""

    out: TextIO
    styled: bool
    _open_reply: str | None = field(default=None, init=False)

    def _dim(self, text: str) -> str:
        return f"\033[2m{text}\033[0m" if self.styled else text

    def _line(self, text: str) -> None:
        if self._open_reply is not None:
            self.out.write("\n")
            self._open_reply = None
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self._line(self._dim(text))

    def show(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ready":
            self._line(f"connected as {message['user_id']} (session {message['session_id']})")
        elif kind == "emotion":
            self._line(
                self._dim(
                    f"  emotion: {message['dominant']} "
                    f"(valence {message['valence']:+.2f}, arousal {message['arousal']:.2f})"
                )
            )
        elif kind == "decision":
            reasons = "; ".join(message.get("reasons", []))
            self._line(
                self._dim(
                    f"  decision: {message['action']} / {message['strategy']} "
                    f"by {message['policy']}: {reasons}"
                )
            )
        elif kind == "reply_start":
            if self._open_reply is not None:
                self._line("")
            self.out.write("heartline> ")
            self._open_reply = message["turn_id"]
        elif kind == "reply_delta" and self._open_reply == message["turn_id"]:
            self.out.write(message["text"])
            self.out.flush()
        elif kind == "reply_end" and message["generator"] == "human":
            pass  # a person has the conversation: their words come as agent messages
        elif kind == "reply_end":
            note = " [interrupted]" if message["interrupted"] else ""
            timing = f"({message['generator']}, ttft {message['ttft_ms']:.1f} ms)"
            self._line(self._dim(f"{note}  {timing}"))
        elif kind == "handoff":
            self._line(self._dim(f"  handoff to a human: {message['reason']}"))
        elif kind == "takeover":
            joined = (
                "joined the conversation" if message["active"] else "left; the bot answers again"
            )
            self._line(self._dim(f"  {message['agent']} {joined}"))
        elif kind == "agent_message":
            self._line(f"{message['agent']}> {message['text']}")
        elif kind == "error":
            self._line(f"  error {message['code']}: {message['message']}")


async def _read_lines(queue: asyncio.Queue[str | None]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        await queue.put(line.decode(errors="replace").rstrip("\r\n"))
    await queue.put(None)


async def _send_lines(
    ws: ClientConnection,
    lines: asyncio.Queue[str | None],
    answered: asyncio.Queue[str],
    *,
    interactive: bool,
) -> None:
    """Send each line; piped input waits for each reply, typed input may barge in."""
    count = 0
    last_turn: str | None = None
    pending: set[str] = set()
    while (line := await lines.get()) is not None:
        text = line.strip()
        if not text:
            continue
        if text == "/quit":
            break
        if text in ("/good", "/bad"):
            if last_turn is not None:
                score = 5 if text == "/good" else 1
                await ws.send(
                    json.dumps({"type": "feedback", "turn_id": last_turn, "score": score})
                )
            continue
        if text == "/cancel":
            await ws.send(json.dumps({"type": "cancel"}))
            continue
        count += 1
        last_turn = f"t{count}"
        pending.add(last_turn)
        await ws.send(json.dumps({"type": "user_message", "id": last_turn, "text": text}))
        while not interactive and pending:
            pending.discard(await answered.get())
    # End of input: wait for the replies still owed, then leave.
    while pending:
        pending.discard(await answered.get())


async def _send_lines_until_closed(
    ws: ClientConnection,
    lines: asyncio.Queue[str | None],
    answered: asyncio.Queue[str],
    *,
    interactive: bool,
) -> None:
    with contextlib.suppress(ConnectionClosed):
        await _send_lines(ws, lines, answered, interactive=interactive)


async def _receive(ws: ClientConnection, view: ChatView, answered: asyncio.Queue[str]) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for frame in ws:
            message = json.loads(frame)
            view.show(message)
            if message.get("type") in ("reply_end", "error") and "turn_id" in message:
                answered.put_nowait(message["turn_id"])


async def chat(url: str, token: str, *, out: TextIO = sys.stdout) -> None:
    """Talk to a Heartline server until `/quit`, end of input or the server closing."""
    view = ChatView(out=out, styled=out.isatty())
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        view.show(json.loads(await ws.recv()))
        if out.isatty():
            view.note(_HELP)
        lines: asyncio.Queue[str | None] = asyncio.Queue(maxsize=100)
        answered: asyncio.Queue[str] = asyncio.Queue()
        async with asyncio.TaskGroup() as group:
            tasks = (
                group.create_task(_read_lines(lines)),
                receiver := group.create_task(_receive(ws, view, answered)),
                sender := group.create_task(
                    _send_lines_until_closed(ws, lines, answered, interactive=sys.stdin.isatty())
                ),
            )
            await asyncio.wait((receiver, sender), return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        if receiver.done() and not receiver.cancelled():
            view.note(f"the server closed the connection ({ws.close_reason or ws.close_code})")
