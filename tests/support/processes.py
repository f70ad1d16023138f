"""Heartline roles as real processes, for tests of the distributed setup."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.http import http_get

__all__ = ["RoleProcess", "free_port", "free_ports"]


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are chosen."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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

    async def wait_ready(self, port: int, within: float = 30.0) -> None:
        """Until `/readyz` on `port` answers 200; fails if the process exits first."""
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                if (await http_get(port, "/readyz"))[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready: {self.log_path.read_text()[-2000:]}")
            await asyncio.sleep(0.1)

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
