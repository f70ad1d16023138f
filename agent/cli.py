"""The `heartline` command: runs what `agent.cli_parser` parsed, one error line on failure."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli_parser import DEMO_OPERATOR, DEMO_USER, build_parser
from agent.config import Settings, load_settings
from agent.errors import ConfigError, HeartlineError, reportable
from agent.gateway.auth import Role
from agent.logging import configure_logging
from agent.privacy.redaction import redact
from agent.processes import LogSettings, cpu_count, run_serving, supervise

if TYPE_CHECKING:
    from agent.app import Running

__all__ = ["main"]

_DAY = 24 * 3600.0
_BROKEN_PIPE = 128 + 13  # what a shell reports for a command ended by SIGPIPE

ServingRole = Callable[[Settings], AbstractAsyncContextManager["Running"]]


def _settings(args: argparse.Namespace) -> Settings:
    names = set(Settings.model_fields)
    flags = {k: v for k, v in vars(args).items() if k in names}
    return load_settings(config_file=getattr(args, "config", None), **flags)


@asynccontextmanager
async def _signalled() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _run_until_signalled(
    role: ServingRole, settings: Settings, on_start: Callable[[Running], None]
) -> None:
    async with _signalled() as stop, role(settings) as running:
        on_start(running)
        await stop.wait()


async def _supervise_until_signalled(
    settings: Settings, count: int, logs: LogSettings, announce: Callable[[str, int], None]
) -> None:
    async with _signalled() as stop:
        await supervise(settings, count, logs=logs, stop=stop, announce=announce)


def _serve(settings: Settings, logs: LogSettings) -> None:
    from agent.emotion.cards import describe
    from agent.gateway.auth import authority_for
    from agent.gateway.ws_route import WS_PATH

    authority, created = authority_for(settings)
    count = settings.workers or cpu_count()

    def announce(host: str, port: int) -> None:
        token = authority.issue(DEMO_USER, ttl_s=_DAY)
        staff = authority.issue(DEMO_OPERATOR, ttl_s=_DAY, role=Role.OPERATOR)
        root = f"http://{host}:{port}"
        if created:
            print(f"Created a token secret in {settings.data_dir}.")
        print(f"Heartline is listening on ws://{host}:{port}{WS_PATH}")
        if count > 1:
            print(f"Serving processes: {count} (--workers), sharing the port and one bus")
        print(f"Demo token (user {DEMO_USER!r}, valid 24 h): {token}")
        print(f"Web chat:          {root}/?token={token}")
        print(f"Operator console:  {root}/operator?token={staff}")
        print(f"OpenAI-compatible: {root}/v1 (the demo token is an API key for user {DEMO_USER!r})")
        print(f"API docs:          {root}/docs")
        for number, line in enumerate(describe(settings.emotion_model, settings.emotion_domain)):
            print(f"{'Emotion models:' if number == 0 else '':<19}{line}")
        for line in _deployment_files(settings):
            print(line)
        chat = _command() + " chat" + _chat_flags(settings, port)
        print(f"Chat with it:      {chat}")
        print("Stop with Ctrl+C.", flush=True)

    if count > 1:
        run_serving(_supervise_until_signalled(settings, count, logs, announce))
        return

    from agent.app import embedded

    def started(running: Running) -> None:
        if running.gateway is None:
            raise RuntimeError("the embedded role starts a gateway")
        announce(running.gateway.host, running.gateway.port)

    run_serving(_run_until_signalled(embedded, settings, started))


def _command() -> str:
    """How the user ran `heartline`, to print commands they can paste."""
    return sys.argv[0] if Path(sys.argv[0]).name == "heartline" else "heartline"


def _deployment_files(settings: Settings) -> list[str]:
    """Banner lines for the files that replace the shipped rules, flow, FAQ and persona."""
    files = [
        ("Rules:", settings.rules_file),
        ("Flow:", settings.flow_file),
        ("FAQ:", settings.faq_file),
        # Only an LLM reads the persona; the templates never do.
        ("Persona:", None if settings.generator == "templates" else settings.system_prompt_file),
    ]
    return [f"{label:<19}{path}" for label, path in files if path is not None]


def _chat_flags(settings: Settings, port: int) -> str:
    """The flags `heartline chat` needs to reach this server and share its secret."""
    defaults = Settings()
    flags = "" if settings.data_dir == defaults.data_dir else f" --data-dir {settings.data_dir}"
    if settings.host not in (defaults.host, "0.0.0.0"):
        flags += f" --host {settings.host}"
    return flags + ("" if port == defaults.port else f" --port {port}")


def _role(name: str, settings: Settings) -> None:
    from agent import app

    role: ServingRole = app.gateway if name == "gateway" else app.worker
    run_serving(_run_until_signalled(role, settings, lambda running: None))


def _chat(args: argparse.Namespace, settings: Settings) -> None:
    from agent.chat import chat
    from agent.gateway.auth import authority_for

    token = args.token
    if token is None:
        if not (settings.data_dir / "secret.key").exists() and settings.secret is None:
            raise ConfigError(
                f"no token given and no secret in {settings.data_dir}; pass --token "
                "(from `heartline token --user NAME` on the server) or --data-dir"
            )
        token = authority_for(settings)[0].issue(args.user, ttl_s=_DAY)
    url = args.url or f"ws://{settings.host}:{settings.port}/ws"
    asyncio.run(chat(url, token))


def _token(args: argparse.Namespace, settings: Settings) -> None:
    from agent.gateway.auth import authority_for

    authority, created = authority_for(settings)
    if created:
        print(f"Created a token secret in {settings.data_dir}.", file=sys.stderr)
    role = Role.OPERATOR if args.operator else Role.USER
    name = args.operator or args.user
    print(authority.issue(name, ttl_s=args.ttl_hours * 3600.0, tenant=args.tenant, role=role))


def _report(error: HeartlineError | OSError) -> int:
    """One line on stderr instead of a traceback; exit 2 for our errors, 1 for the system's.

    Redacted like the logs: an error may quote a host, an address or a user's text."""
    print(f"heartline: {redact(str(error))}", file=sys.stderr)
    return 2 if isinstance(error, HeartlineError) else 1


def _init(folder: Path, *, force: bool) -> None:
    from agent.scaffold import RULES_FILE, SETTINGS_FILE, write_deployment

    files = write_deployment(folder, force=force)
    width = max(len(str(folder / file.name)) for file in files)
    print(f"Wrote a Heartline deployment in {folder}:")
    for file in files:
        note = "; readable by you only" if file.private else ""
        print(f"  {folder / file.name!s:<{width}}  {file.purpose}{note}")
    rules = shlex.quote(str(folder / RULES_FILE))
    settings_file = shlex.quote(str(folder / SETTINGS_FILE))
    print("Each file explains itself in its comments. After editing the rules, check them:")
    print(f"  {_command()} policy check {rules}")
    print("Start it:")
    print(f"  {_command()} serve --config {settings_file}")


def _run(args: argparse.Namespace) -> None:
    if args.command == "init":  # before the settings: HEARTLINE_CONFIG may name its file
        _init(args.folder, force=args.force)
        return
    settings = _settings(args)
    logs = LogSettings(
        settings.log_level, {"auto": None, "json": True, "console": False}[settings.log_format]
    )
    configure_logging(logs.level, json=logs.json)
    if args.command == "serve":
        _serve(settings, logs)
    elif args.command in ("gateway", "worker"):
        _role(args.command, settings)
    elif args.command == "chat":
        _chat(args, settings)
    elif args.command in ("train", "eval", "emotion"):
        _emotion_command(args)
    elif args.command == "policy" and args.target == "check":
        _check_rules(args.file)
    elif args.command == "policy":
        from agent.training.policy.evaluate import evaluate_policy

        evaluation = asyncio.run(
            evaluate_policy(settings, max_weight=args.max_weight, offline=args.offline)
        )
        print("\n".join(evaluation.lines()))
        if evaluation.skipped:
            print(f"({evaluation.skipped} logged decisions had no outcome yet and were skipped)")
    elif args.command in ("db", "users"):
        asyncio.run(_data_command(args, settings))
    else:
        _token(args, settings)


def _emotion_command(args: argparse.Namespace) -> None:
    if args.command == "emotion":
        from agent.emotion.commands import print_reading, read_text

        reading = read_text(
            args.text, model_name=args.model, precision=args.precision, domain=args.domain
        )
        print_reading(reading, as_json=args.json)
        return
    from agent.training.extra import require_extra

    require_extra(f"heartline {args.command} {args.target}")
    from agent.training.emotion import commands
    from agent.training.emotion.datasets import DataFormat

    if args.command == "train" and args.target == "support":
        for path in commands.train_support(args.data, model_name=args.model, out=args.out):
            print(f"wrote {path}")
    elif args.command == "train":
        metrics = commands.train(
            args.data,
            lang=args.lang,
            out=args.out,
            epochs=args.epochs,
            seed=args.seed,
            max_examples=args.max_examples,
        )
        print(json.dumps(metrics, indent=2, default=str))
    elif args.command == "eval":
        data_format = DataFormat(args.format) if args.format else None
        evaluation = commands.evaluate_file(
            args.data,
            data_format=data_format,
            model_name=args.model,
            precision=args.precision,
            domain=args.domain,
            confusion=args.confusion,
            progress=not args.json,
        )
        commands.print_evaluation(evaluation, as_json=args.json)


def _check_rules(path: Path) -> None:
    from policies import load_rules

    rules = load_rules(path)
    print(f"{path}: {len(rules)} rules, valid")
    for rule in rules:
        print(f"  line {rule.line:>4}  {rule.name:<28} {rule.action.value} / {rule.strategy.value}")


async def _data_command(args: argparse.Namespace, settings: Settings) -> None:
    from agent import data_commands as run

    if args.command == "users":
        if args.target == "export":
            exported = await run.users_export(settings, args.user)
            if args.out is None:
                print(exported)
            else:
                args.out.write_text(exported + "\n", encoding="utf-8")
                print(f"wrote everything about {args.user!r} to {args.out}", file=sys.stderr)
        else:
            await run.users_forget(settings, args.user)
    elif args.target == "upgrade":
        await run.db_upgrade(settings, args.revision)
    elif args.target == "downgrade":
        await run.db_downgrade(settings, args.revision)
    elif args.target == "current":
        await run.db_current(settings)
    elif args.target == "purge":
        await run.db_purge(settings, args.older_than_days)
    elif args.target == "rotate-key":
        await run.db_rotate_key(settings)
    else:
        run.db_new_key(args.key_id)


def main(argv: Sequence[str] | None = None) -> int:
    # Before torch loads: OpenMP threads that spin while waiting stall badly when the
    # cores are shared with the event loop or other processes.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Hugging Face's own progress bars (loading weights) would break the log's lines;
    # Heartline's long jobs draw their own.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        # Python flushes stdout once more at exit; point it at nothing so that is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _BROKEN_PIPE
    except (HeartlineError, OSError, BaseExceptionGroup) as exc:
        error = reportable(exc)
        if error is None:
            raise
        return _report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
