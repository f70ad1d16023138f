"""Heartline roles as real processes, for tests of the distributed setup."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.http import http_get

__all__ = ["RoleProcess", "free_port"]

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A free port below the kernel's range for outgoing connections.

    A port from that range may be taken by any client socket (the server's own connection to
    the broker included) between choosing it and binding it, or while a server restarts.
    """
    below = _ephemeral_ports_start()
    while True:
        port = random.randrange(10_000, below)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _ephemeral_ports_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


class RoleProcess:
    """`heartline <role> ...` in a child process, logging JSON lines to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.killed = False
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", *args],
            env={**os.environ, **env, "HEARTLINE_LOG_FORMAT": "json"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, listening: str, within: float = 30.0) -> int:
        """The port the process logged with the event `listening`, once `/readyz` there is 200.

        Roles started with port 0 bind whatever is free, so no other socket can take the
        port between choosing it and binding it; the log line says which one they got.
        Fails if the process exits first.
        """
        deadline = time.monotonic() + within
        port: int | None = None
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self._tail()}")
            port = port or self._logged_port(listening)
            try:
                if port is not None and (await http_get(port, "/readyz"))[0] == 200:
                    return port
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready: {self._tail()}")
            await asyncio.sleep(0.1)

    async def wait_listening(self, listening: str, within: float = 30.0) -> int:
        """The port the process logged with the event `listening`, ready or not."""
        deadline = time.monotonic() + within
        while (port := self._logged_port(listening)) is None:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self._tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {listening!r}: {self._tail()}")
            await asyncio.sleep(0.05)
        return port

    def _logged_port(self, event: str) -> int | None:
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line still being written, or plain output
            if isinstance(record, dict) and record.get("event") == event:
                return int(record["port"])
        return None

    def _tail(self) -> str:
        return self.log_path.read_text()[-2000:]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.killed = True
        self.process.kill()
        self.process.wait(10)
        self._log.close()
