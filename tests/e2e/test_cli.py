"""The `heartline` command as a user runs it: real processes, real sockets."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.gateway import TokenAuthority
from tests.support.processes import free_port

HEARTLINE = [sys.executable, "-m", "agent.cli"]


def _run(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEARTLINE, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("command", ["serve", "gateway", "worker", "chat", "token"])
def test_every_command_explains_itself(command: str) -> None:
    result = _run(command, "--help")
    assert result.returncode == 0
    assert "--data-dir" in result.stdout


def test_token_is_valid_for_the_data_dirs_secret(tmp_path: Path) -> None:
    result = _run("token", "--user", "alice", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    secret = (tmp_path / "secret.key").read_bytes()
    assert TokenAuthority(secret).verify(result.stdout.strip()) == "alice"
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_a_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = _run("serve", "--port", "99999", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("heartline: invalid settings (port")
    assert "Traceback" not in result.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[str]]]:
    port = free_port()
    with subprocess.Popen(
        [*HEARTLINE, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(4)]
            assert any(f"ws://127.0.0.1:{port}/ws" in line for line in banner), banner
            assert any(line.startswith("Demo token") for line in banner), banner
            yield port, tmp_path, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def test_chat_talks_to_serve_and_serve_stops_cleanly(
    server: tuple[int, Path, subprocess.Popen[str]],
) -> None:
    port, data_dir, process = server
    result = _run(
        "chat",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        stdin="This is ridiculous, I am furious!\n我今天好开心\n/good\n",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("connected as demo")
    assert any("emotion: anger" in line for line in lines)
    assert any("de-escalate" in line for line in lines)
    replies = [line for line in lines if line.startswith("heartline> ")]
    assert len(replies) == 2
    assert any("\u4e00" <= c <= "\u9fff" for c in replies[1])
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert process.stderr is not None
    assert "gateway stopped" in process.stderr.read()
