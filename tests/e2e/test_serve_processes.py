"""`heartline serve --workers 2`: two serving processes behind one port, one bus between them.

Which process accepts a connection is the kernel's choice, so each check runs over
many sessions: with a broken link between the processes, some sessions would be
missing from a staff console's board, or a takeover would not reach its customer.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.cli import serving

pytestmark = pytest.mark.timeout(180)

SESSIONS = 12
WAIT_S = 30.0


def _served(banner: list[str]) -> tuple[str, str, str]:
    """The WebSocket URL, the demo user's token and the operator's token the banner shows."""
    text = "\n".join(banner)
    url = re.search(r"listening on (ws://\S+)", text)
    user = re.search(r"Demo token .*: (\S+)", text)
    staff = re.search(r"/operator\?token=(\S+)", text)
    assert url, text
    assert user, text
    assert staff, text
    return url.group(1), user.group(1), staff.group(1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[list[str]]:
    data = tmp_path / "data"
    args = ("--workers", "2", "--port", "0", "--data-dir", str(data), "--emotion-model", "lexicon")
    with serving(*args) as banner:
        yield banner


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def _answered(ws: ClientConnection, turn_id: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "user_message", "id": turn_id, "text": "I'm upset."}))
    while (message := await _receive(ws))["type"] != "reply_end":
        assert message["type"] != "error", message
    return message


async def _sessions(url: str, token: str) -> list[tuple[ClientConnection, str]]:
    opened = []
    for _ in range(SESSIONS):
        ws = await connect(f"{url}?token={token}")
        ready = await _receive(ws)
        opened.append((ws, str(ready["session_id"])))
    return opened


def _serving_processes(supervisor: int) -> list[psutil.Process]:
    """The supervisor's serving processes (not multiprocessing's resource tracker)."""
    children = psutil.Process(supervisor).children()
    return [p for p in children if "spawn_main" in " ".join(p.cmdline())]


async def test_every_session_is_answered_and_staff_see_and_reach_each(
    server: list[str],
) -> None:
    url, user_token, staff_token = _served(server)
    assert "Serving processes: 2" in "\n".join(server)
    root = url.removesuffix("/ws").replace("ws://", "http://", 1)
    opened = await _sessions(url, user_token)
    staff = httpx.AsyncClient(
        base_url=f"{root}/v1/operator",
        headers={"Authorization": f"Bearer {staff_token}"},
        timeout=WAIT_S,
    )
    try:
        ends = await asyncio.gather(*(_answered(ws, f"t{i}") for i, (ws, _) in enumerate(opened)))
        assert all(end["text"] for end in ends)
        wanted = {session_id for _, session_id in opened}
        async with asyncio.timeout(WAIT_S):  # the board follows the bus a moment later
            while True:
                # A new connection each time: any process may answer it.
                listed = (await staff.get("/sessions", headers={"Connection": "close"})).json()
                if wanted <= {s["session_id"] for s in listed["sessions"]}:
                    break
                await asyncio.sleep(0.05)
        for ws, session_id in opened:
            taken = await staff.post(
                f"/sessions/{session_id}/takeover", headers={"Connection": "close"}
            )
            assert taken.status_code == 200, taken.text
            assert await _receive(ws) == {"type": "takeover", "agent": "staff", "active": True}
    finally:
        await staff.aclose()
        for ws, _ in opened:
            await ws.close()


def test_a_serving_process_that_dies_is_started_again(server: list[str]) -> None:
    serve = next(p for p in psutil.Process().children() if "serve" in " ".join(p.cmdline()))
    first = _serving_processes(serve.pid)
    assert len(first) == 2
    first[0].send_signal(signal.SIGKILL)
    first[0].wait(10)
    deadline = 60.0
    while deadline > 0:
        now = _serving_processes(serve.pid)
        if len(now) == 2 and first[0].pid not in {p.pid for p in now}:
            break
        time.sleep(0.2)
        deadline -= 0.2
    else:
        pytest.fail("the serving process was not started again")
    url, user_token, _ = _served(server)

    async def still_answers() -> None:
        opened = await _sessions(url, user_token)
        try:
            for index, (ws, _) in enumerate(opened):
                assert (await _answered(ws, f"a{index}"))["text"]
        finally:
            for ws, _ in opened:
                await ws.close()

    asyncio.run(still_answers())
