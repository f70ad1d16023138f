"""The `heartline` command as a user runs it: one-shot commands and `serve` up to its banner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HEARTLINE", "heartline", "serving"]

HEARTLINE = [sys.executable, "-m", "agent.cli"]
_BANNER_END = "Stop with Ctrl+C."


def heartline(
    *args: str, stdin: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEARTLINE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[list[str]]:
    """Run `heartline serve ARGS` (with `env` added to the environment) until its banner
    is printed; yield the banner's lines.

    Stopped with SIGTERM on the way out. A server that exits before its banner ends
    fails the test with what it wrote to stderr.
    """
    # The log goes to a file: a pipe nobody reads would stall a chatty server.
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as log,
        subprocess.Popen(
            [*HEARTLINE, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=None if env is None else {**os.environ, **env},
        ) as process,
    ):
        assert process.stdout is not None
        try:
            banner: list[str] = []
            while not banner or banner[-1] != _BANNER_END:
                line = process.stdout.readline()
                if not line:
                    process.wait(30)
                    log.seek(0)
                    raise AssertionError(f"serve ended before its banner: {log.read()}")
                banner.append(line.rstrip("\n"))
            yield banner
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
