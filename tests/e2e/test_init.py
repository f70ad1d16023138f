"""`heartline init DIR` as a new user runs it: then `policy check` and `serve --config`."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import heartline, serving


def test_init_then_check_then_serve_with_the_deployment(tmp_path: Path) -> None:
    folder = tmp_path / "support-bot"
    init = heartline("init", str(folder))
    assert init.returncode == 0, init.stderr
    lines = init.stdout.splitlines()
    assert lines[0] == f"Wrote a Heartline deployment in {folder}:"
    for name in ("heartline.toml", "rules.yaml", "flow.yaml", "faq.yaml", "persona.md"):
        assert any(line.strip().startswith(str(folder / name)) for line in lines), name
    assert lines[-1].endswith(f" serve --config {folder / 'heartline.toml'}")
    assert lines[-3].endswith(f" policy check {folder / 'rules.yaml'}")

    check = heartline("policy", "check", str(folder / "rules.yaml"))
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"{folder / 'rules.yaml'}: 9 rules, valid")

    data = tmp_path / "data"  # a flag beside the file, so the test keeps out of $HOME
    settings = folder / "heartline.toml"
    with serving("--config", str(settings), "--port", "0", "--data-dir", str(data)) as banner:
        assert f"Rules:             {folder / 'rules.yaml'}" in banner
        assert f"Flow:              {folder / 'flow.yaml'}" in banner
        assert f"FAQ:               {folder / 'faq.yaml'}" in banner
        assert not any(line.startswith("Persona:") for line in banner)  # templates only
        port = next(line for line in banner if "listening on" in line).rsplit(":", 1)[1]
        chat = heartline(
            "chat",
            "--port",
            port.removesuffix("/ws"),
            "--data-dir",
            str(data),
            stdin="How do I reset my password?\n",
        )
    assert chat.returncode == 0, chat.stderr
    reply = next(line for line in chat.stdout.splitlines() if line.startswith("heartline> "))
    assert "Forgot password?" in reply  # the FAQ file's answer, not a template's


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert heartline("init", str(tmp_path)).returncode == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text("# my own rules\n", encoding="utf-8")
    settings = (tmp_path / "heartline.toml").read_text(encoding="utf-8")

    again = heartline("init", str(tmp_path))
    assert again.returncode == 2
    assert again.stderr.startswith(f"heartline: {tmp_path / 'heartline.toml'}, {rules}, ")
    assert "already exist; pass --force to overwrite" in again.stderr
    assert rules.read_text(encoding="utf-8") == "# my own rules\n"

    forced = heartline("init", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert heartline("policy", "check", str(rules)).returncode == 0
    assert (tmp_path / "heartline.toml").read_text(encoding="utf-8") != settings  # new secrets
