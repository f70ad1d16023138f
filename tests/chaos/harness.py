"""A deployment on loopback, a load of conversations, and one fault fired while it runs.

`run_scenario` starts a private Mosquitto, a private PostgreSQL, a gateway and two
workers as real processes; opens `sessions` WebSocket conversations of `turns` turns
each, one turn after the other (the next once the reply ended); fires the scenario's
fault (kill -9 of a role, then its restart) once replies are streaming; and counts what
the clients saw and what the database holds:

- `sent`: turns the users sent; `answered`: turns whose reply ended;
- `resent`: turns a client had to send again as new messages (the server gave up on
  them, or the session could not be resumed), the way a user would;
- `resumed`: reconnections that resumed the session (the unanswered turn sent again
  under its own id: answered once, or shown again if it was answered meanwhile);
- `lost`: turns never answered before the scenario's deadline;
- `duplicated`: a second `reply_end` of a turn, events of a turn after its end, or a
  turn stored twice;
- `garbled`: a reply whose pieces do not add up to its final text;
- `reordered`: turns of a session stored out of the order they were sent in;
- `missing_from_database`: answered turns with no row in `turns`;
- `slowest_turn_s`: the longest a turn took from its first sending to its reply's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent.gateway import TokenAuthority
from tests.fixtures.mqtt import PrivateBroker, find_mosquitto
from tests.fixtures.private_postgres import PrivatePostgres, server_binaries
from tests.support.cluster import role_env
from tests.support.processes import RoleProcess, free_port

__all__ = ["SCENARIOS", "Outcome", "run_scenario"]

SCENARIOS = ("worker", "workers", "broker", "postgres", "gateway")
TEXTS = (
    "Where is my parcel? It has been a week.",
    "This is ridiculous, I am furious!",
    "我很担心我的订单",
    "Thank you, that helps a lot.",
)


@dataclass
class Outcome:
    scenario: str
    sent: int = 0
    answered: int = 0
    resent: int = 0
    resumed: int = 0
    lost: int = 0
    duplicated: int = 0
    garbled: int = 0
    reordered: int = 0
    missing_from_database: int = 0
    slowest_turn_s: float = 0.0
    refusals: Counter[str] = field(default_factory=Counter)
    """Why turns were sent again: the error codes, and `connection` for a dropped one."""
    answered_ids: set[tuple[str, str]] = field(default_factory=set, repr=False)

    @property
    def clean(self) -> bool:
        """Nothing lost, duplicated, garbled, reordered or missing."""
        return not (
            self.lost
            or self.duplicated
            or self.garbled
            or self.reordered
            or self.missing_from_database
        )


class _Deployment:
    """The processes of one scenario, each of which can be killed and started again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        binary, binaries = find_mosquitto(), server_binaries()
        if binary is None or binaries is None:
            raise RuntimeError("the chaos suite needs mosquitto, initdb and pg_ctl installed")
        (folder / "broker").mkdir()
        (folder / "postgres").mkdir()
        self.broker = PrivateBroker(binary, folder / "broker")
        self.postgres = PrivatePostgres(binaries, _postgres_folder())
        self.secret = secrets.token_hex(32)
        self.gateway_port = free_port()
        self.workers: list[RoleProcess | None] = [None, None]
        self.gateway: RoleProcess | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    def env(self) -> dict[str, str]:
        return role_env(
            self.broker,
            self.postgres.url,
            self.secret,
            self.folder / "data",
            HEARTLINE_TOKEN_DELAY="0.02",
        )

    async def start(self) -> None:
        self.broker.start()
        self.postgres.start()
        for index in range(len(self.workers)):
            await self.start_worker(index)
        await self.start_gateway()

    async def start_worker(self, index: int) -> None:
        worker = self._role(f"worker{index}", ["worker", "--probe-port", "0"])
        await worker.wait_ready("probes listening", within=60)
        self.workers[index] = worker

    async def start_gateway(self) -> None:
        gateway = self._role("gateway", ["gateway", "--port", str(self.gateway_port)])
        await gateway.wait_ready("gateway listening", within=60)
        self.gateway = gateway

    def _role(self, name: str, args: list[str]) -> RoleProcess:
        self._starts += 1
        return RoleProcess(f"{name}-{self._starts}", args, self.env(), self.folder)

    def stop_roles(self) -> None:
        """SIGTERM: workers write what they buffered before they exit."""
        for role in (self.gateway, *self.workers):
            if role is not None and role.process.poll() is None:
                role.stop()

    def stop(self) -> None:
        self.stop_roles()
        self.broker.stop()
        if self.postgres.running():
            self.postgres.stop()
        shutil.rmtree(self.postgres.data.parent, ignore_errors=True)


def _postgres_folder() -> Path:
    """Outside pytest's tmp_path, which only root may enter: the server runs as postgres."""
    return Path(tempfile.mkdtemp(prefix="heartline-chaos-postgres-"))


Fault = Callable[[_Deployment], Any]


async def _kill_worker(deployment: _Deployment) -> None:
    worker = deployment.workers[0]
    assert worker is not None
    worker.kill()
    await asyncio.sleep(1.0)
    await deployment.start_worker(0)


async def _kill_workers(deployment: _Deployment) -> None:
    for worker in deployment.workers:
        assert worker is not None
        worker.kill()
    await asyncio.sleep(1.0)
    for index in range(len(deployment.workers)):
        await deployment.start_worker(index)


async def _kill_broker(deployment: _Deployment) -> None:
    deployment.broker.kill()
    await asyncio.sleep(1.0)
    deployment.broker.start()


async def _kill_postgres(deployment: _Deployment, down_s: float = 2.0) -> None:
    """Down `down_s`: longer outages show whether turns wait out the store or are dropped."""
    deployment.postgres.kill()
    await asyncio.sleep(down_s)
    deployment.postgres.start()


async def _kill_gateway(deployment: _Deployment) -> None:
    gateway = deployment.gateway
    assert gateway is not None
    gateway.kill()
    await asyncio.sleep(1.0)
    await deployment.start_gateway()


FAULTS: dict[str, Fault] = {
    "worker": _kill_worker,
    "workers": _kill_workers,
    "broker": _kill_broker,
    "postgres": _kill_postgres,
    "gateway": _kill_gateway,
}


@dataclass
class _Turn:
    number: int
    text: str
    first_sent: float = 0.0
    sendings: int = 0
    answered: bool = False

    @property
    def turn_id(self) -> str:
        """Sent again, a turn is a new message: a fresh id (`t3`, then `t3-2`, ...)."""
        return f"t{self.number}" if self.sendings <= 1 else f"t{self.number}-{self.sendings}"


def _number(turn_id: str) -> int:
    return int(turn_id.removeprefix("t").split("-")[0])


async def _conversation(
    url: str, token: str, turns: list[_Turn], outcome: Outcome, deadline: float
) -> None:
    """One user's turns in order, reconnecting (resuming the session) and sending again
    what went unanswered."""
    pending = list(turns)
    session_id: str | None = None
    while pending and time.monotonic() < deadline:
        resume = "" if session_id is None else f"?resume={session_id}"
        try:
            async with connect(
                url + resume,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=5,
            ) as ws:
                ready = json.loads(await ws.recv())
                if ready["type"] != "ready":  # the session could not start: try again
                    outcome.refusals[f"session {ready.get('code')}"] += 1
                    await asyncio.sleep(0.3)
                    continue
                session_id = ready["session_id"]
                same_id = ready.get("resumed", False)
                outcome.resumed += same_id
                while pending and time.monotonic() < deadline:
                    if await _one_turn(ws, session_id, pending[0], outcome, deadline, same_id):
                        pending.pop(0)
                    same_id = False
        except (ConnectionClosed, OSError, TimeoutError, InvalidStatus):
            outcome.refusals["connection"] += 1
            await asyncio.sleep(0.3)
    outcome.lost += len(pending)


async def _one_turn(
    ws: ClientConnection,
    session_id: str,
    turn: _Turn,
    outcome: Outcome,
    deadline: float,
    same_id: bool,
) -> bool:
    """Send the turn (`same_id`: again under its own id, in a resumed session) and read
    until its reply ends: True; False to send it again."""
    if not turn.first_sent:
        turn.first_sent = time.monotonic()
        outcome.sent += 1
    elif not same_id:
        outcome.resent += 1
    turn.sendings += not same_id
    await ws.send(json.dumps({"type": "user_message", "id": turn.turn_id, "text": turn.text}))
    pieces: list[str] = []
    while True:
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            message: dict[str, Any] = json.loads(await ws.recv())
        if message.get("turn_id") != turn.turn_id:
            # Only earlier turns were sent on this connection, and they had ended.
            outcome.duplicated += message["type"] in ("reply_end", "reply_delta", "reply_start")
            continue
        match message["type"]:
            case "reply_start":
                pieces = []  # a reply restarted by the worker that took the turn over
            case "reply_delta":
                pieces.append(message["text"])
            case "reply_end" if not message["interrupted"]:
                if turn.answered:
                    outcome.duplicated += 1
                    continue
                turn.answered = True
                outcome.garbled += "".join(pieces) != message["text"]
                outcome.answered += 1
                outcome.answered_ids.add((session_id, turn.turn_id))
                outcome.slowest_turn_s = max(
                    outcome.slowest_turn_s, time.monotonic() - turn.first_sent
                )
                return True
            case "reply_end" | "error":  # interrupted; turn_timeout, unavailable, ...
                outcome.refusals[message.get("code", "interrupted")] += 1
                await asyncio.sleep(0.5)
                return False


async def _check_database(postgres: PrivatePostgres, outcome: Outcome) -> None:
    """Every answered turn stored once, each session's in the order they were sent."""
    conn = await asyncpg.connect(host="127.0.0.1", port=postgres.port, user="postgres")
    try:
        rows = await conn.fetch("SELECT session_id, turn_id FROM turns ORDER BY session_id, seq")
    finally:
        await conn.close()
    stored = [(row["session_id"], row["turn_id"]) for row in rows]
    outcome.missing_from_database = len(outcome.answered_ids - set(stored))
    outcome.duplicated += len(stored) - len(set(stored))
    by_session: dict[str, list[int]] = {}
    for session_id, turn_id in stored:
        by_session.setdefault(session_id, []).append(_number(turn_id))
    outcome.reordered = sum(
        sum(later < earlier for earlier, later in itertools.pairwise(sent))
        for sent in by_session.values()
    )


@contextlib.asynccontextmanager
async def _deployed(folder: Path) -> AsyncIterator[_Deployment]:
    deployment = _Deployment(folder)
    try:
        await deployment.start()
        yield deployment
    finally:
        deployment.stop()


async def run_scenario(
    scenario: str,
    folder: Path,
    *,
    sessions: int = 20,
    turns: int = 10,
    limit_s: float = 120.0,
    postgres_down_s: float = 2.0,
) -> Outcome:
    """Run the load with `scenario`'s fault fired once replies stream; what came of it.

    `postgres_down_s` is how long the "postgres" fault keeps the server down.
    """
    outcome = Outcome(scenario)
    fault = FAULTS[scenario]
    if scenario == "postgres":
        fault = functools.partial(_kill_postgres, down_s=postgres_down_s)
    async with _deployed(folder) as deployment:
        authority = TokenAuthority(deployment.secret.encode())
        deadline = time.monotonic() + limit_s
        conversations = [
            [_Turn(n, TEXTS[(user + n) % len(TEXTS)]) for n in range(1, turns + 1)]
            for user in range(sessions)
        ]
        load = asyncio.gather(
            *(
                _conversation(
                    deployment.url, authority.issue(f"chaos{user}"), turns_, outcome, deadline
                )
                for user, turns_ in enumerate(conversations)
            )
        )
        await asyncio.sleep(1.5)  # replies are streaming
        await fault(deployment)
        await load
        deployment.stop_roles()
        await _check_database(deployment.postgres, outcome)
    return outcome
