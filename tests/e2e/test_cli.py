"""The `heartline` command as a user runs it: real processes, real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.gateway import TokenAuthority
from agent.gateway.auth import Role
from memory.crypto import TextCipher
from memory.sql import SqlConversationStore, open_engine, upgrade_schema
from tests.support.cli import HEARTLINE, heartline, serving
from tests.support.processes import free_port
from tests.support.records import turn

_run = heartline


@pytest.mark.parametrize(
    "command",
    [
        "serve",
        "gateway",
        "worker",
        "chat",
        "token",
        "db current",
        "policy check",
        "policy evaluate",
        "users export",
    ],
)
def test_every_command_explains_itself(command: str) -> None:
    result = _run(*command.split(), "--help")
    assert result.returncode == 0
    assert "--data-dir" in result.stdout
    assert "--config FILE" in result.stdout


def test_token_is_valid_for_the_data_dirs_secret(tmp_path: Path) -> None:
    result = _run("token", "--user", "alice", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    secret = (tmp_path / "secret.key").read_bytes()
    assert TokenAuthority(secret).verify(result.stdout.strip()).user_id == "alice"
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_a_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = _run("serve", "--port", "99999", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("heartline: invalid settings (port")
    assert "Traceback" not in result.stderr


def test_a_fatal_error_is_redacted_like_the_logs() -> None:
    refused = heartline(
        "worker", env={"HEARTLINE_MQTT_HOST": "127.0.0.1", "HEARTLINE_MQTT_PORT": str(free_port())}
    )
    assert refused.returncode == 2
    assert "cannot connect to the MQTT broker at [IP]:" in refused.stderr
    assert "127.0.0.1" not in refused.stderr


def test_serve_takes_its_settings_from_a_file(tmp_path: Path) -> None:
    port = free_port()
    settings = tmp_path / "heartline.toml"
    settings.write_text(f'port = {port}\ndata_dir = "data"\n', encoding="utf-8")
    with serving("--config", str(settings)) as banner:
        assert f"Heartline is listening on ws://127.0.0.1:{port}/ws" in banner
        assert f"Created a token secret in {tmp_path / 'data'}." in banner
    settings.write_text(f"port = {port}\nprot = 1\n", encoding="utf-8")
    refused = _run("serve", env={"HEARTLINE_CONFIG": str(settings)})
    assert refused.returncode == 2
    assert refused.stderr == (
        f"heartline: {settings}:2: 'prot' is not a Heartline setting; did you mean port?\n"
    )


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_serve_with_the_vllm_engine_but_no_vllm_says_how_to_install_it(tmp_path: Path) -> None:
    args = ["--generator", "vllm-engine", "--port", "0", "--data-dir", str(tmp_path)]
    without_model = _run("serve", *args)
    assert without_model.returncode == 2
    assert "--generator vllm-engine needs --model" in without_model.stderr
    without_vllm = _run("serve", *args, "--model", "Qwen/Qwen2.5-0.5B-Instruct")
    assert without_vllm.returncode == 2
    assert "pip install 'heartline[vllm]'" in without_vllm.stderr
    assert "Traceback" not in without_vllm.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[str]]]:
    with subprocess.Popen(
        [*HEARTLINE, "serve", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(4)]
            listening = re.search(r"ws://127\.0\.0\.1:(\d+)/ws", "".join(banner))
            assert listening, banner
            port = int(listening.group(1))
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


def _slice(source: Path, target: Path, lines: int) -> Path:
    with source.open(encoding="utf-8") as file:
        target.write_text("".join(next(file) for _ in range(lines)), encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("text", "model", "groups"),
    [
        ("I am so angry, this is outrageous!", "minilm-goemotions-v1", {"anger"}),
        ("Thank you so much, this is wonderful!", "minilm-goemotions-v1", {"joy"}),
        ("气死我了，太过分了！", "smp2020-chinese", {"anger"}),
    ],
)
def test_emotion_prints_the_reading_of_the_texts_language(
    text: str, model: str, groups: set[str]
) -> None:
    from agent.emotion.labels import EKMAN_OF

    result = _run("emotion", text, "--json")
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    assert reading["model"].startswith(model)
    assert EKMAN_OF[reading["dominant"]] in groups
    assert len(reading["scores"]) == 28


@pytest.mark.parametrize(
    ("source", "lines", "keys"),
    [
        ("goemotions/dev.tsv", 300, {"macro_f1", "micro_f1", "ekman_macro_f1"}),
        ("smp2020_ewect_usual/dev.tsv", 200, {"macro_f1", "micro_f1"}),
        ("meld/dev_sent_emo.csv", 200, {"macro_f1", "micro_f1", "ekman_macro_f1"}),
    ],
)
def test_eval_scores_each_format_and_draws_the_confusion_matrix(
    shared_data: Path, tmp_path: Path, source: str, lines: int, keys: set[str]
) -> None:
    data = _slice(shared_data / source, tmp_path / Path(source).name, lines)
    png = tmp_path / "confusion.png"
    result = _run("eval", "emotion", "--data", str(data), "--json", "--confusion", str(png))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert keys <= set(summary)
    assert 0.0 < summary["macro_f1"] <= 1.0
    assert summary["confusion_png"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_eval_prints_per_class_tables(shared_data: Path, tmp_path: Path) -> None:
    data = _slice(shared_data / "goemotions" / "dev.tsv", tmp_path / "dev.tsv", 100)
    result = _run(
        "eval",
        "emotion",
        "--data",
        str(data),
        "--model",
        "lexicon",
        "--confusion",
        str(tmp_path / "c.png"),
    )
    assert result.returncode == 0, result.stderr
    for space in ("fine:", "ekman:", "sentiment:"):
        assert space in result.stdout
    assert "admiration" in result.stdout
    assert result.stdout.endswith(f"\nConfusion matrix: {tmp_path / 'c.png'}\n")


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    read, write = os.pipe()
    os.close(read)  # as `| head -0` does: nobody reads what the command prints
    try:
        result = subprocess.run(
            [*HEARTLINE, "emotion", "--model", "lexicon", "I am so happy"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert result.returncode == 128 + signal.SIGPIPE
    assert result.stderr == ""


def test_eval_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("just some words\n", encoding="utf-8")
    result = _run("eval", "emotion", "--data", str(bogus))
    assert result.returncode == 2
    assert "notes.txt" in result.stderr
    assert "--format" in result.stderr


def test_train_emotion_writes_a_chinese_model(shared_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = shared_data / "smp2020_ewect_usual"
    _slice(source / "train.tsv", data / "train.tsv", 1200)
    _slice(source / "dev.tsv", data / "dev.tsv", 200)
    out = tmp_path / "model"
    result = _run("train", "emotion", "--data", str(data), "--lang", "zh", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["dev"]["macro_f1"] > 0


async def _store_a_conversation(data_dir: Path, keys: str) -> None:
    engine = open_engine(f"sqlite+aiosqlite:///{data_dir / 'heartline.db'}")
    try:
        await upgrade_schema(engine)
        async with SqlConversationStore(engine, cipher=TextCipher.from_spec(keys)) as store:
            for seq in (1, 2):
                record = turn("s1", seq, user_id="alice", created_at=1_000.0 + seq)
                await store.record_turn(dataclasses.replace(record, text=f"parcel {seq} lost"))
            await store.record_turn(turn("s2", 1, user_id="bob", created_at=time.time()))
    finally:
        await engine.dispose()


def test_the_data_commands_export_rotate_forget_and_purge(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    old = _run("db", "new-key", "--id", "old").stdout.strip()
    new = _run("db", "new-key", "--id", "new").stdout.strip()
    assert old.startswith("old:")
    assert new.startswith("new:")
    asyncio.run(_store_a_conversation(tmp_path, old))

    assert "up to date" in _run("db", "current", *data).stdout
    keyless = _run("users", "export", "alice", *data)
    assert keyless.returncode == 2
    assert "no key is configured" in keyless.stderr
    exported = _run("users", "export", "alice", *data, env={"HEARTLINE_ENCRYPTION_KEYS": old})
    assert [t["text"] for t in json.loads(exported.stdout)["turns"]] == [
        "parcel 1 lost",
        "parcel 2 lost",
    ]
    rotated = _run("db", "rotate-key", *data, env={"HEARTLINE_ENCRYPTION_KEYS": f"{new},{old}"})
    assert "3 of 3 turns re-encrypted under key 'new'" in rotated.stdout, rotated.stderr
    again = _run("users", "export", "alice", *data, env={"HEARTLINE_ENCRYPTION_KEYS": new})
    assert again.returncode == 0, again.stderr

    purged = json.loads(_run("db", "purge", "--older-than-days", "1", *data).stdout)
    assert purged["deleted"]["turns"] == 2  # alice's, stored at epoch 1000: long ago
    assert purged["deleted"]["users"] == 1
    forgotten = _run("users", "forget", "bob", *data)
    assert forgotten.returncode == 0, forgotten.stderr
    assert json.loads(forgotten.stdout)["deleted"]["turns"] == 1
    assert _run("users", "forget", "bob", *data).returncode == 2

    assert "0005 -> 0004" in _run("db", "downgrade", *data).stdout
    assert "behind" in _run("db", "current", *data).stdout
    assert "0004 -> 0005" in _run("db", "upgrade", *data).stdout


def test_token_for_an_operator_in_a_tenant(tmp_path: Path) -> None:
    result = _run("token", "--operator", "dana", "--tenant", "acme", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    secret = (tmp_path / "secret.key").read_bytes()
    principal = TokenAuthority(secret).verify(result.stdout.strip())
    assert (principal.user_id, principal.tenant, principal.role) == ("dana", "acme", Role.OPERATOR)
    both = _run("token", "--user", "a", "--operator", "b", "--data-dir", str(tmp_path))
    assert both.returncode == 2
