"""Serving on every core: one supervisor and N serving processes behind one port.

`heartline serve --workers N` (N > 1) makes this process a supervisor. It binds the
port, prepares the database once (migrations, the token secret), starts the bus
hub (`agent.bus.link.BusHub`) on a Unix socket in a private temporary directory, and
spawns N serving processes. Each runs the embedded stack (`agent.app.embedded`) on
a listening socket of its own and a bus linked to the hub. On Linux every process
gets its own socket on the one port (SO_REUSEPORT), and the kernel spreads new
connections evenly over them; one socket accepted on by all let whichever process
woke first take a burst of connections (38 of 50 sessions to one of two). A
restarted process takes over its predecessor's socket, with the connections
waiting there. Elsewhere the processes accept on one shared socket. A connection,
so a WebSocket session and its turns, stays in the process that accepted it, which
answers its turns in order and keeps them in the shared database. What concerns
every session (staff consoles' view, an operator taking a session over) crosses
processes through the hub.

A serving process that exits while the others run is started again, after a pause
that doubles (1 s up to 30 s) while restarts keep failing within a minute. SIGTERM
or SIGINT stops them all: each gets SIGTERM and `grace_s` to finish its sessions,
then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

import structlog

from agent.config import Settings
from agent.errors import ConfigError, HeartlineError, reportable
from agent.logging import configure_logging

__all__ = [
    "LogSettings",
    "bind_listeners",
    "cpu_count",
    "limit_compute_threads",
    "limit_malloc_arenas",
    "run_serving",
    "settle_heap",
    "supervise",
]

_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
_MALLOC_ARENAS = 2

_log = structlog.get_logger(__name__)

_FIRST_PAUSE_S: Final = 1.0
_LONGEST_PAUSE_S: Final = 30.0
_HEALTHY_AFTER_S: Final = 60.0  # a process that ran this long restarts at once


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How a serving process logs: as its supervisor does."""

    level: str
    json: bool | None


def cpu_count() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def run_serving(main: Coroutine[Any, Any, None]) -> None:
    """Run a serving role on uvloop where it is installed (docs/benchmarks.md measures it),
    with glibc's malloc arenas limited before the role starts its threads."""
    limit_malloc_arenas()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def limit_compute_threads(threads: int) -> bool:
    """At most `threads` threads for the numeric libraries' own pools (ONNX Runtime's, torch's);
    whether that was set.

    Each of N serving processes on C cores gets C // N: a pool as wide as the machine in
    every process keeps more threads than cores spinning, and the English model then
    spends half again as much CPU per reading (docs/benchmarks.md). ``OMP_NUM_THREADS``
    in the environment wins. Called before torch is imported, which reads it.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return False
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
    return True


def limit_malloc_arenas(arenas: int = _MALLOC_ARENAS) -> bool:
    """At most `arenas` glibc malloc arenas for the threads started from now on; whether
    that was set.

    glibc gives each thread that allocates its own arena, up to eight per core, and
    memory freed in one is not reused by another: a serving process's RSS then creeps
    as sessions come and go (docs/reliability.md, session churn). `MALLOC_ARENA_MAX`
    in the environment wins; other C libraries are left as they are.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, arenas))


def settle_heap() -> bool:
    """Once the models are loaded: keep what start-up made out of the garbage collector's
    scans, and hand the heap's free pages back to the system (glibc only); whether
    the pages could be handed back.

    Start-up leaves over a hundred thousand long-lived objects (modules, models), which
    every full collection would walk again under load, tens of milliseconds each.
    Loading the emotion models passes several copies of their weights through the heap,
    and glibc keeps large freed blocks for reuse: about 35 MiB a serving process would
    otherwise carry for good.
    """
    gc.collect()
    gc.freeze()
    trim = _glibc("malloc_trim")
    return trim is not None and bool(trim(0))


def _glibc(name: str) -> Any:
    """A function of the C library this process runs on, if it is glibc's (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


async def supervise(
    settings: Settings,
    count: int,
    *,
    logs: LogSettings,
    stop: asyncio.Event,
    announce: Callable[[str, int], None],
    grace_s: float = 15.0,
) -> None:
    """Serve with `count` processes until `stop` is set; `announce(host, port)` once all are up.

    Raises `HeartlineError` when a serving process fails before it is ready (a bad
    setting, a model that does not load): nothing is served then.
    """
    if count < 2:
        raise ConfigError(f"a supervisor runs 2 or more serving processes, not {count}")
    await _prepare(settings)
    with contextlib.ExitStack() as stack:
        bound = bind_listeners(settings.host, settings.port, count)
        listeners = [stack.enter_context(sock) for sock in bound]
        host, port = listeners[0].getsockname()[:2]
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="heartline-"))
        from agent.bus.link import BusHub

        hub_path = Path(folder) / "bus"
        async with BusHub(hub_path):
            pool = _Pool(settings, listeners, hub_path, logs, grace_s)
            try:
                await pool.start(count)
                announce(str(host), int(port))
                await pool.keep_running(stop)
            finally:
                await pool.stop_all()


async def _prepare(settings: Settings) -> None:
    """What the serving processes would otherwise race for: the secret, the schema."""
    from agent.gateway.auth import authority_for
    from memory.sql import open_engine, upgrade_schema

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    authority_for(settings)
    engine = open_engine(settings.resolved_database_url())
    try:
        await upgrade_schema(engine)
    finally:
        await engine.dispose()


def bind_listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """A listening socket for each of `count` processes, on one port (0: any free one)
    where the kernel balances such sockets (the module docstring); else one for all.
    `OSError` when the port is taken."""
    from agent.gateway.http_server import balances_reuse_port, bind_listener

    claim = bind_listener(host, port)
    if not balances_reuse_port():
        return [claim] * count
    # A socket without SO_REUSEPORT claims the port first, so that a port another
    # server holds is refused here, as it would be without the option, not shared.
    with claim:
        port = claim.getsockname()[1]
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            listeners.append(bind_listener(host, port, reuse_port=True))
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


@dataclass(slots=True)
class _Member:
    """One serving process and what its supervisor knows of it."""

    index: int
    process: BaseProcess
    started_at: float
    pause_s: float = _FIRST_PAUSE_S
    exited: asyncio.Event = field(default_factory=asyncio.Event)


class _Pool:
    """The serving processes: started, watched, restarted, stopped."""

    def __init__(
        self,
        settings: Settings,
        listeners: list[socket.socket],
        hub: Path,
        logs: LogSettings,
        grace_s: float,
    ) -> None:
        """`listeners[i]` is the socket of process i (and of those restarted in its place)."""
        self._settings = settings
        self._listeners = listeners
        self._hub = hub
        self._logs = logs
        self._grace_s = grace_s
        self._context = multiprocessing.get_context("spawn")
        self._members: dict[int, _Member] = {}
        self._stopping = False
        self._threads = 1

    async def start(self, count: int) -> None:
        """Start `count` processes; return once every one is ready."""
        self._threads = max(1, cpu_count() // count)
        started = await asyncio.gather(
            *(self._spawn(index) for index in range(count)), return_exceptions=True
        )
        failures = [result for result in started if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    async def keep_running(self, stop: asyncio.Event) -> None:
        """Restart processes that exit, until `stop` is set."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                exits = {
                    asyncio.ensure_future(member.exited.wait()): member
                    for member in self._members.values()
                }
                done, _ = await asyncio.wait(
                    [stopping, *exits], return_when=asyncio.FIRST_COMPLETED
                )
                for future in exits:
                    future.cancel()
                for future in done:
                    if future in exits and not stop.is_set():
                        await self._restart(exits[future], stop)
        finally:
            stopping.cancel()

    async def stop_all(self) -> None:
        """SIGTERM every process, SIGKILL those still running after the grace period."""
        self._stopping = True
        members = list(self._members.values())
        for member in members:
            if member.process.is_alive() and member.process.pid is not None:
                os.kill(member.process.pid, signal.SIGTERM)
        waiting = [asyncio.ensure_future(member.exited.wait()) for member in members]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=self._grace_s)
            for future in late:
                future.cancel()
        for member in members:
            # One whose exit was seen may not be reaped yet: it is not killed, only joined.
            if not member.exited.is_set() and member.process.is_alive():
                _log.warning("serving process did not stop; killing it", index=member.index + 1)
                member.process.kill()
            await asyncio.to_thread(member.process.join)
            self._forget(member)

    async def _spawn(self, index: int) -> _Member:
        loop = asyncio.get_running_loop()
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=serve_share,
            args=(
                self._settings,
                self._listeners[index],
                self._hub,
                self._logs,
                self._threads,
                send,
            ),
            name=f"heartline-serve-{index + 1}",
            daemon=False,
        )
        process.start()
        send.close()
        member = _Member(index=index, process=process, started_at=loop.time())
        _once_readable(process.sentinel, member.exited)
        try:
            await _ready(receive, member)
        except BaseException:
            if process.is_alive():
                process.kill()
            await asyncio.to_thread(process.join)
            self._forget(member)
            raise
        finally:
            receive.close()
        self._members[index] = member
        _log.info("serving process ready", index=index + 1, pid=process.pid)
        return member

    async def _restart(self, member: _Member, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(member.process.join)
        self._forget(member)
        ran_s = loop.time() - member.started_at
        pause = 0.0 if ran_s >= _HEALTHY_AFTER_S else member.pause_s
        _log.warning(
            "serving process exited; starting it again",
            index=member.index + 1,
            exit_code=member.process.exitcode,
            ran_s=round(ran_s, 1),
            pause_s=pause,
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await stop.wait()
        if stop.is_set():
            return
        next_pause = _FIRST_PAUSE_S if pause == 0.0 else min(2 * pause, _LONGEST_PAUSE_S)
        try:
            restarted = await self._spawn(member.index)
        except HeartlineError as exc:
            _log.error("serving process failed to start again", error=str(exc))
            placeholder = _Member(member.index, member.process, loop.time(), next_pause)
            placeholder.exited.set()  # try again on the next round
            self._members[member.index] = placeholder
            return
        restarted.pause_s = next_pause

    def _forget(self, member: _Member) -> None:
        _forget_reader(member.process.sentinel)


def _once_readable(fd: int, event: asyncio.Event) -> None:
    """Set `event` the first time `fd` is readable (a pipe with data, a process's end)."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        loop.remove_reader(fd)
        event.set()

    loop.add_reader(fd, readable)


def _forget_reader(fd: int) -> None:
    with contextlib.suppress(ValueError, OSError):
        asyncio.get_running_loop().remove_reader(fd)


async def _ready(receive: Connection, member: _Member) -> None:
    """Wait for the process's word that it serves; `HeartlineError` if it exits first."""
    said = asyncio.Event()
    _once_readable(receive.fileno(), said)
    waits = [asyncio.ensure_future(said.wait()), asyncio.ensure_future(member.exited.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        _forget_reader(receive.fileno())
    try:
        word = receive.recv() if said.is_set() and receive.poll() else None
    except (EOFError, OSError):
        word = None
    if word is True:
        return
    await asyncio.to_thread(member.process.join)
    if isinstance(word, _Failure):
        raise (ConfigError if word.bad_setting else HeartlineError)(word.message)
    raise HeartlineError(
        f"serving process {member.index + 1} exited with {member.process.exitcode}"
        " before it was ready; its error is logged above"
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why a serving process could not start, sent to its supervisor to report as its own."""

    message: str
    bad_setting: bool


def serve_share(
    settings: Settings,
    listener: socket.socket,
    hub: Path,
    logs: LogSettings,
    threads: int,
    ready: Connection,
) -> None:
    """A serving process's entry point (spawned): the embedded stack on the shared socket,
    with `threads` threads for the emotion model."""
    # Ctrl+C reaches the whole process group; the supervisor stops its processes itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_compute_threads(threads)
    configure_logging(logs.level, json=logs.json)
    try:
        run_serving(_serve_share(settings, listener, hub, ready))
    except (HeartlineError, OSError, BaseExceptionGroup) as exc:
        error = reportable(exc)
        if error is None:
            raise
        if ready.closed:  # it had served: the supervisor logs the exit and starts another
            _log.error("serving process failed", error=str(error))
        else:
            ready.send(_Failure(str(error), bad_setting=isinstance(error, ConfigError)))
        raise SystemExit(1) from None


async def _serve_share(
    settings: Settings, listener: socket.socket, hub: Path, ready: Connection
) -> None:
    from agent.app import embedded
    from agent.bus.link import LinkedBus

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        LinkedBus(hub, name=f"serve-{os.getpid()}") as bus,
        embedded(settings, bus=bus, listener=listener),
    ):
        ready.send(True)
        ready.close()
        # A hub gone means the supervisor is: stop rather than serve cut off from the others.
        ends = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(bus.wait_closed())]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in ends:
                end.cancel()
