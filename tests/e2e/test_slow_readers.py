"""Clients that stop reading: `heartline serve` neither keeps their sessions nor waits on them.

Each stalled client shrinks its socket's receive buffer and stops reading while it
asks for long replies (an LLM's, megabytes in all, more than the connection can hold),
so the server's writes to it back up. Then it vanishes (a reset, no close frame), or
the server is told to stop while it is still there.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import re
import signal
import socket
import struct
import subprocess
import termios
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from agent.gateway.auth import TokenAuthority, load_or_create_secret
from tests.support.cli import HEARTLINE, serving
from tests.support.fake_vllm import FakeVllm, Script
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

STALLED = 2
TURNS = 10
TEXT = "My order is late and I am upset about it, please help me now."
MODEL = "test-model"
# The longest reply there is (16,000 characters) in three-character pieces: about 500 KB
# of reply_delta frames per turn.
LONG_REPLY = Script(tokens=("ok ",) * 6000)


@pytest.fixture
async def llm() -> AsyncIterator[FakeVllm]:
    async with FakeVllm(model=MODEL) as fake:
        fake.default = LONG_REPLY
        yield fake


def _args(data: Path, llm: FakeVllm, workers: int) -> tuple[str, ...]:
    return (
        *("--workers", str(workers), "--port", "0", "--data-dir", str(data)),
        *("--emotion-model", "lexicon", "--generator", "vllm"),
        *("--vllm-url", llm.base_url, "--model", MODEL),
    )


def _url(banner: list[str]) -> str:
    found = re.search(r"listening on (ws://\S+)", "\n".join(banner))
    assert found, banner
    return found.group(1)


async def _stalled(url: str, token: str) -> tuple[ClientConnection, socket.socket]:
    """A session whose client sends `TURNS` turns and reads nothing."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    ws = await connect(
        url,
        sock=sock,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_queue=1,  # the client library stops reading too
        ping_interval=None,
    )
    for n in range(TURNS):
        await ws.send(json.dumps({"type": "user_message", "id": f"t{n}", "text": TEXT}))
        await asyncio.sleep(0.5)  # each reply streams for a while; no barge-in
    return ws, sock


def _unread_bytes(sock: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0])


def _reset(ws: ClientConnection, sock: socket.socket) -> None:
    """Vanish: close with a TCP reset, as a crashed client or a dropped network does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


def _open_sessions(url: str) -> float:
    root = url.removeprefix("ws://").split("/")[0]
    text = httpx.get(f"http://{root}/metrics", timeout=10).text
    (line,) = [line for line in text.splitlines() if line.startswith("heartline_ws_connections ")]
    return float(line.split()[1])


async def _answered(url: str, token: str) -> None:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps({"type": "user_message", "id": "fresh", "text": "Hello?"}))
        async with asyncio.timeout(30):
            while json.loads(await ws.recv())["type"] != "reply_end":
                pass


@pytest.fixture
def one_process(tmp_path: Path, llm: FakeVllm) -> Iterator[tuple[str, TokenAuthority]]:
    data = tmp_path / "data"
    with serving(*_args(data, llm, 1)) as banner:
        yield _url(banner), TokenAuthority(load_or_create_secret(data)[0])


async def test_clients_that_stop_reading_and_vanish_leave_no_session(
    one_process: tuple[str, TokenAuthority],
) -> None:
    url, authority = one_process
    stalled = await asyncio.gather(
        *(_stalled(url, authority.issue(f"slow-{i}")) for i in range(STALLED))
    )
    await eventually(lambda: all(_unread_bytes(sock) > 0 for _, sock in stalled), within=30)
    assert _open_sessions(url) == STALLED
    for ws, sock in stalled:
        _reset(ws, sock)
    await eventually(lambda: _open_sessions(url) == 0, within=30)
    await _answered(url, authority.issue("fresh"))


async def test_serve_stops_on_sigterm_while_clients_do_not_read(
    tmp_path: Path, llm: FakeVllm
) -> None:
    data = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        *HEARTLINE, "serve", *_args(data, llm, 2), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        banner = [(await process.stdout.readline()).decode() for _ in range(3)]
        url = _url(banner)
        authority = TokenAuthority(load_or_create_secret(data)[0])
        stalled = await asyncio.gather(
            *(_stalled(url, authority.issue(f"slow-{i}")) for i in range(STALLED))
        )
        await eventually(lambda: all(_unread_bytes(sock) > 0 for _, sock in stalled), within=30)
        process.send_signal(signal.SIGTERM)
        # Within the serving processes' grace period (15 s), with time to spare.
        async with asyncio.timeout(30):
            assert await process.wait() == 0
        for ws, sock in stalled:
            _reset(ws, sock)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
