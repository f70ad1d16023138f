"""A fuzz pass over the HTTP APIs: schemathesis against the server's own OpenAPI schema.

Every operation gets schema-derived and mutated requests; every answer must be
documented (status, content type, shape), no request may crash the server, and
invalid requests must be refused. The chat API refuses some requests the schema
alone allows (the last message must be the user's), so schemathesis's "valid data is
accepted" check stays off.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.gateway import TokenAuthority
from agent.gateway.auth import Role

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
HEARTLINE = [sys.executable, "-m", "agent.cli"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TokenAuthority]]:
    data = tmp_path_factory.mktemp("fuzz")
    process = subprocess.Popen(
        [*HEARTLINE, "serve", "--port", "0", "--data-dir", str(data)],
        env={**os.environ, "HEARTLINE_EMOTION_MODEL": "lexicon", "HEARTLINE_LOG_LEVEL": "warning"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if found := re.search(r"listening on ws://([\d.]+:\d+)/ws", line):
                break
        else:
            pytest.fail("heartline serve printed no address")
        authority = TokenAuthority((data / "secret.key").read_bytes())
        yield f"http://{found.group(1)}", authority
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("role", "paths"),
    [
        (Role.USER, "--exclude-path-regex=^/v1/operator"),
        (Role.OPERATOR, "--include-path-regex=^/v1/operator"),
    ],
)
def test_every_operation_answers_as_documented(
    server: tuple[str, TokenAuthority], role: Role, paths: str
) -> None:
    root, authority = server
    token = authority.issue("fuzzer", role=role)
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{root}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            paths,
            "--max-examples=25",
            "--seed=20261206",
            "--exclude-checks=positive_data_acceptance",
            "--phases=examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
