"""Servers for the benchmarks: `heartline` processes, a private Mosquitto, a PostgreSQL database.

Every process listens on 127.0.0.1 and is stopped when its context manager
exits; its output goes to a log file in a temporary directory, whose tail is
printed when it fails or exits uncleanly.

* `embedded_server`: ``heartline serve`` on a free port with a temporary data directory.
* `distributed_servers`: one ``heartline gateway`` and N ``heartline worker`` on an MQTT
  broker and a fresh PostgreSQL database (created with psql, dropped at the end). The
  broker is, by default, a private Mosquitto started from deploy/mosquitto.conf.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.gateway import TokenAuthority, load_or_create_secret

__all__ = ["HOST", "ServerHandle", "distributed_servers", "embedded_server", "private_mosquitto"]

HOST = "127.0.0.1"
HEARTLINE = str(Path(sys.executable).with_name("heartline"))
DEPLOY_MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto.conf"
# Settings of deploy/mosquitto.conf that the private broker replaces with its own.
_MOSQUITTO_REPLACED = (
    *("listener", "port", "persistence_location", "pid_file", "log_dest", "user"),
    *("allow_anonymous", "password_file", "acl_file"),  # the benchmarks' broker is open
)
_PROBE_TIMEOUT_S = 2.0


@dataclass(slots=True)
class ServerHandle:
    """A server to load: its URL, a token per session index, its process ids, its broker."""

    url: str
    token_for: Callable[[int], str]
    pids: dict[str, int] = field(default_factory=dict)
    broker: str | None = None


# Processes


@dataclass(slots=True)
class _Process:
    """A child process; `log` is where it logs, `console` its stdout and stderr if elsewhere."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    console: Path | None = None

    def tail(self, lines: int = 30) -> str:
        texts: list[str] = []
        for path in (self.log, self.console):
            if path is None:
                continue
            try:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                texts.append(f"(no log: {exc})")
        return "\n".join("\n".join(texts).splitlines()[-lines:])


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without inherited HEARTLINE_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTLINE_")}
    env.update(extra)
    return env


def _spawn(
    name: str, argv: Sequence[str], logdir: Path, *, env: dict[str, str] | None = None
) -> _Process:
    """Start `argv` with its output in logdir/<name>.log."""
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=logdir)
    return _Process(name, popen, log)


def _stop(process: _Process, *, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; prints the log tail of an unclean exit."""
    if process.popen.poll() is None:
        process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"{process.name} did not stop in {timeout:g} s; killing it", file=sys.stderr)
            process.popen.kill()
            process.popen.wait(5)
    code = process.popen.returncode
    if code not in (0, -signal.SIGTERM):
        print(f"{process.name} exited with {code}:\n{process.tail()}", file=sys.stderr)


def _check_running(process: _Process) -> None:
    if process.popen.poll() is not None:
        raise RuntimeError(
            f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}"
        )


async def _wait_for_log(process: _Process, pattern: str) -> re.Match[str]:
    """The first match of `pattern` in the process's output; raises if the process exits."""
    regex = re.compile(pattern)
    while True:
        match = regex.search(process.log.read_text(encoding="utf-8", errors="replace"))
        if match is not None:
            return match
        _check_running(process)
        await asyncio.sleep(0.05)


async def _http_status(port: int, path: str) -> int:
    """The status code of GET http://127.0.0.1:port/path (no proxy), 0 if unreachable."""
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                status = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return 0
    parts = status.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def _wait_ready(process: _Process, port: int) -> None:
    """Until /readyz answers 200; raises if the process exits."""
    while await _http_status(port, "/readyz") != 200:
        _check_running(process)
        await asyncio.sleep(0.1)


async def _wait_listening(process: _Process, port: int) -> None:
    """Until 127.0.0.1:port accepts a TCP connection; raises if the process exits."""
    while True:
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                _, writer = await asyncio.open_connection(HOST, port)
        except (OSError, TimeoutError):
            _check_running(process)
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def _until_ready(process: _Process, ready: Awaitable[object], *, limit_s: float) -> None:
    """Await `ready` for at most `limit_s` seconds; the timeout names the process."""
    try:
        async with asyncio.timeout(limit_s):
            await ready
    except TimeoutError:
        raise TimeoutError(
            f"{process.name} not ready in {limit_s:g} s:\n{process.tail()}"
        ) from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _server_env(rate: float, emotion_model: str) -> dict[str, str]:
    burst = max(1, int(rate))
    return {
        "HEARTLINE_MESSAGES_PER_SECOND": str(rate),
        "HEARTLINE_MESSAGE_BURST": str(burst),
        "HEARTLINE_EMOTION_MODEL": emotion_model,
    }


def _issuer(authority: TokenAuthority) -> Callable[[int], str]:
    return lambda index: authority.issue(f"bench-{index}", ttl_s=3600)


# Embedded


@contextlib.asynccontextmanager
async def embedded_server(
    *,
    rate: float,
    emotion_model: str = "lexicon",
    startup_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> AsyncIterator[ServerHandle]:
    """`heartline serve` on a free port with a temporary data directory.

    The lexicon by default: the runtime benchmarks measure the pipeline around the
    recognizer; bench/emotion_speed.py measures the models. `env` adds settings
    (`HEARTLINE_GENERATOR`, ...).
    """
    with tempfile.TemporaryDirectory(prefix="heartline-bench-") as tmp:
        data = Path(tmp) / "data"
        argv = [HEARTLINE, "serve", "--host", HOST, "--port", "0", "--data-dir", str(data)]
        argv += ["--log-level", "warning"]
        environment = _clean_env({**_server_env(rate, emotion_model), **(env or {})})
        process = _spawn("serve", argv, Path(tmp), env=environment)
        try:
            announced = _wait_for_log(process, r"listening on (ws://\S+)\n")
            async with asyncio.timeout(startup_timeout):
                match = await announced
            url = match.group(1)
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            await _until_ready(process, _wait_ready(process, port), limit_s=startup_timeout)
            authority = TokenAuthority(load_or_create_secret(data)[0])
            yield ServerHandle(
                url=url, token_for=_issuer(authority), pids={"serve": process.popen.pid}
            )
        finally:
            _stop(process)


# Mosquitto


def _find_mosquitto() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "the mosquitto binary was not found (PATH, /usr/sbin, /usr/local/sbin): install "
        "Mosquitto, or pass --mqtt-port to use a broker that is already running"
    )


def _mosquitto_config(workdir: Path, port: int) -> tuple[Path, Path, list[str]]:
    """deploy/mosquitto.conf with its own listener, persistence and log; config, log, settings.

    The settings returned are the copied `set_tcp_nodelay` lines, for the report.
    """
    data = workdir / "mosquitto-data"
    data.mkdir()
    log = workdir / "mosquitto.log"
    log.touch()
    # Run as root, Mosquitto drops to its own user before it opens the log and the store.
    workdir.chmod(0o755)
    data.chmod(0o777)
    log.chmod(0o666)
    kept = [
        line
        for line in DEPLOY_MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines()
        if line.split(maxsplit=1)[:1] not in ([word] for word in _MOSQUITTO_REPLACED)
    ]
    kept += [f"listener {port} {HOST}", f"persistence_location {data}/", f"log_dest file {log}"]
    kept.append("allow_anonymous true")
    config = workdir / "mosquitto.conf"
    config.write_text("\n".join(kept) + "\n", encoding="utf-8")
    nodelay = [line.strip() for line in kept if line.startswith("set_tcp_nodelay")]
    return config, log, nodelay


@contextlib.asynccontextmanager
async def private_mosquitto(
    workdir: Path, *, startup_timeout: float = 10.0
) -> AsyncIterator[tuple[int, str]]:
    """A Mosquitto configured from deploy/mosquitto.conf on a free port; (port, description)."""
    binary = _find_mosquitto()
    port = _free_port()
    config, log, nodelay = _mosquitto_config(workdir, port)
    console = _spawn("mosquitto-console", [binary, "-c", str(config)], workdir)
    process = _Process("mosquitto", console.popen, log, console.log)
    try:
        await _until_ready(process, _wait_listening(process, port), limit_s=startup_timeout)
        settings = ", ".join(nodelay) or "no set_tcp_nodelay"
        yield port, f"private Mosquitto {HOST}:{port} from deploy/mosquitto.conf ({settings})"
    finally:
        _stop(process)


@contextlib.asynccontextmanager
async def _broker(
    workdir: Path, mqtt: tuple[str, int] | None
) -> AsyncIterator[tuple[str, int, str]]:
    """The broker to use: `mqtt` (host, port) as it is, or a private Mosquitto when None."""
    if mqtt is not None:
        host, port = mqtt
        yield host, port, f"existing broker {host}:{port} (its own configuration)"
        return
    async with private_mosquitto(workdir) as (port, description):
        yield HOST, port, description


# Distributed


def _psql(sql: str, *, user: str, admin_db: str) -> None:
    argv = ["psql", "-h", HOST, "-U", user, "-d", admin_db, "-v", "ON_ERROR_STOP=1", "-c", sql]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({sql}): {done.stderr.strip()}")


@contextlib.contextmanager
def _database(*, name: str, user: str, admin_db: str) -> Iterator[str]:
    """A new PostgreSQL database on 127.0.0.1:5432, dropped at the end; its SQLAlchemy URL."""
    _psql(f"CREATE DATABASE {name}", user=user, admin_db=admin_db)
    try:
        yield f"postgresql+asyncpg://{user}@{HOST}:5432/{name}"
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", user=user, admin_db=admin_db)


@contextlib.asynccontextmanager
async def distributed_servers(
    *,
    workers: int,
    rate: float,
    pg_user: str,
    pg_admin_db: str,
    mqtt: tuple[str, int] | None = None,
    parallel_start: bool = False,
    emotion_model: str = "lexicon",
    startup_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> AsyncIterator[ServerHandle]:
    """One gateway and `workers` workers on an MQTT broker and a fresh PostgreSQL database.

    `mqtt` is the (host, port) of a running broker; None starts a private
    Mosquitto from deploy/mosquitto.conf. Workers start one after another
    unless `parallel_start`. `env` adds settings for every role.
    """
    run = secrets.token_hex(4)
    secret = secrets.token_urlsafe(48)
    with (
        _database(name=f"heartline_bench_{run}", user=pg_user, admin_db=pg_admin_db) as url,
        tempfile.TemporaryDirectory(prefix="heartline-bench-") as tmp,
    ):
        async with _broker(Path(tmp), mqtt) as (mqtt_host, mqtt_port, broker):
            environment = _clean_env(
                {
                    **_server_env(rate, emotion_model),
                    **(env or {}),
                    "HEARTLINE_SECRET": secret,
                    "HEARTLINE_DATABASE_URL": url,
                    "HEARTLINE_WORKER_GROUP": f"bench_{run}",
                    "HEARTLINE_MQTT_HOST": mqtt_host,
                    "HEARTLINE_MQTT_PORT": str(mqtt_port),
                    "HEARTLINE_DATA_DIR": str(Path(tmp) / "data"),
                }
            )
            roles = _roles(
                Path(tmp), environment, workers, startup_timeout, parallel=parallel_start
            )
            async with roles as (port, pids):
                yield ServerHandle(
                    url=f"ws://{HOST}:{port}/ws",
                    token_for=_issuer(TokenAuthority(secret.encode())),
                    pids=pids,
                    broker=broker,
                )


def _worker_ready(process: _Process) -> Awaitable[re.Match[str]]:
    return _wait_for_log(process, r"worker ready")


@contextlib.asynccontextmanager
async def _roles(
    logdir: Path, env: dict[str, str], workers: int, startup_timeout: float, *, parallel: bool
) -> AsyncIterator[tuple[int, dict[str, int]]]:
    """Workers, then a gateway on a free port once they are ready; stopped in reverse."""
    processes: list[_Process] = []
    try:
        # Workers log at info so that "worker ready" says when they subscribed.
        # One at a time unless `parallel` (which exercises concurrent start-up:
        # the schema creation serialises on a PostgreSQL advisory lock).
        argv = [HEARTLINE, "worker", "--log-level", "info", "--log-format", "json"]
        for index in range(workers):
            processes.append(_spawn(f"worker{index + 1}", argv, logdir, env=env))
            if not parallel:
                await _until_ready(
                    processes[-1], _worker_ready(processes[-1]), limit_s=startup_timeout
                )
        for process in processes:
            await _until_ready(process, _worker_ready(process), limit_s=startup_timeout)
        port = _free_port()
        argv = [HEARTLINE, "gateway", "--host", HOST, "--port", str(port)]
        gateway = _spawn("gateway", [*argv, "--log-level", "warning"], logdir, env=env)
        processes.append(gateway)
        await _until_ready(gateway, _wait_ready(gateway, port), limit_s=startup_timeout)
        yield port, {p.name: p.popen.pid for p in processes}
    finally:
        for process in reversed(processes):
            _stop(process)
