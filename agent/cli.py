"""The `heartline` command: serve, gateway, worker, chat, token."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.config import Settings, load_settings
from agent.emotion.datasets import DataFormat
from agent.emotion.precision import PRECISIONS
from agent.errors import ConfigError, HeartlineError
from agent.logging import configure_logging

if TYPE_CHECKING:
    from agent.app import Running

__all__ = ["main"]

_DEMO_USER = "demo"
_MODEL_HELP = (
    "auto (the shipped English and Chinese models, by language), neural, chinese, lexicon, "
    "or a Hugging Face sequence-classification model (folder or hub id)"
)
_PRECISION_HELP = (
    "number format of the neural English model: auto (bfloat16 where the CPU computes it "
    "natively, else float32), float32 or bfloat16"
)
_DAY = 24 * 3600.0

Role = Callable[[Settings], AbstractAsyncContextManager["Running"]]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the SQLite file and the token secret live "
        "(default: $XDG_DATA_HOME/heartline or ~/.local/share/heartline)",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="auto: key-value in a terminal, JSON lines otherwise",
    )


def _listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8765; 0 = any)")


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db "
        "(default: heartline.db in the data directory)",
    )


def _emotion_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--emotion-model", help=_MODEL_HELP + " (default auto)")
    parser.add_argument("--emotion-precision", choices=PRECISIONS, help=_PRECISION_HELP)


def _generation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--generator",
        choices=["templates", "vllm", "vllm-engine", "local"],
        help="templates (offline, default), an LLM behind vLLM's OpenAI-compatible API, "
        "vLLM's engine in this process (--model; needs heartline[vllm] and a GPU), "
        "or a local transformers model (--local-model)",
    )
    parser.add_argument("--local-model", type=Path, help="a transformers causal LM directory")
    parser.add_argument("--vllm-url", help="the vLLM server's root URL, e.g. http://gpu:8000")
    parser.add_argument(
        "--model",
        help="the model name the vLLM server serves; for vllm-engine, a Hugging Face id or folder",
    )
    parser.add_argument(
        "--first-token-timeout",
        type=float,
        help="seconds to wait for the LLM's first token before the templates answer (8)",
    )
    parser.add_argument("--system-prompt-file", type=Path, help="replaces the shipped persona")
    parser.add_argument(
        "--faq-file",
        type=Path,
        help="a YAML or CSV knowledge file of questions and answers (docs/generation.md)",
    )


def _rules_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules-file", type=Path, help="YAML rules replacing the shipped ones (docs/policies.md)"
    )
    parser.add_argument(
        "--flow-file",
        type=Path,
        help="YAML conversation flow replacing the shipped customer-service flow",
    )


def _mqtt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt-host", help="MQTT broker host (default 127.0.0.1)")
    parser.add_argument("--mqtt-port", type=int, help="MQTT broker port (default 1883)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heartline",
        description="Heartline: a real-time, emotion-aware conversational agent. "
        "Every option can also be set as HEARTLINE_<OPTION> in the environment.",
    )
    parser.add_argument("--version", action="version", version=f"heartline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run everything in one process (no network services needed)",
        description="Run gateway and worker in one process: in-process bus, SQLite in the data "
        "directory, offline emotion model and template replies. Prints a demo token.",
    )
    _listen(serve)
    _database(serve)
    _emotion_model(serve)
    _rules_file(serve)
    _generation(serve)
    serve.add_argument(
        "--token-delay", type=float, help="seconds between streamed template pieces (default 0)"
    )
    _common(serve)

    gateway = commands.add_parser(
        "gateway",
        help="run a stateless WebSocket gateway on the MQTT bus",
        description="Accept WebSocket clients and relay their turns over MQTT to the workers. "
        "Gateways must share the token secret (HEARTLINE_SECRET).",
    )
    _listen(gateway)
    _mqtt(gateway)
    _common(gateway)

    worker = commands.add_parser(
        "worker",
        help="run a dialogue worker on the MQTT bus",
        description="Answer turns from the MQTT bus; workers in one group split the turns and "
        "share state through the database (PostgreSQL in production).",
    )
    _mqtt(worker)
    _database(worker)
    _emotion_model(worker)
    _rules_file(worker)
    _generation(worker)
    worker.add_argument("--group", dest="worker_group", help="shared-subscription group")
    worker.add_argument(
        "--probe-port",
        type=int,
        help="serve /healthz, /readyz and /metrics on this port (default: off)",
    )
    worker.add_argument("--host", help="interface for --probe-port (default 127.0.0.1)")
    worker.add_argument(
        "--token-delay", type=float, help="seconds between streamed template pieces (default 0)"
    )
    _common(worker)

    chat = commands.add_parser(
        "chat",
        help="talk to a server from the terminal",
        description="Stream replies from a Heartline server and show the emotion it read. "
        "Without --token, a token for --user is made from the data directory's secret.",
    )
    chat.add_argument("--url", help="server URL (default ws://HOST:PORT/ws)")
    _listen(chat)
    chat.add_argument("--token", help="a token from `heartline token`")
    chat.add_argument("--user", default=_DEMO_USER, help="user to chat as (default demo)")
    _common(chat)

    train = commands.add_parser("train", help="train a model").add_subparsers(
        dest="target", required=True, metavar="TARGET"
    )
    train_emotion = train.add_parser(
        "emotion",
        help="train the emotion model of a language",
        description="Train the English (GoEmotions, MiniLM + LoRA) or Chinese (SMP2020-EWECT) "
        "emotion model from a folder with train.tsv and dev.tsv. Deterministic for a seed; "
        "running it again with the same --out resumes. Writes the model and metrics.json.",
    )
    train_emotion.add_argument("--data", type=Path, required=True, help="folder with train/dev")
    train_emotion.add_argument("--lang", choices=["en", "zh"], default="en")
    train_emotion.add_argument(
        "--out",
        type=Path,
        help="output folder (default models/goemotions-minilm or models/smp2020-chinese)",
    )
    train_emotion.add_argument("--epochs", type=int, default=3, help="English only (default 3)")
    train_emotion.add_argument("--seed", type=int, default=13)
    train_emotion.add_argument("--max-examples", type=int, help="use the first N (quick runs)")
    _common(train_emotion)

    evaluate = commands.add_parser("eval", help="evaluate a model").add_subparsers(
        dest="target", required=True, metavar="TARGET"
    )
    eval_emotion = evaluate.add_parser(
        "emotion",
        help="F1 of an emotion model on a labelled file",
        description="Print macro/micro-F1 per label space and per class on a GoEmotions TSV, "
        "SMP2020 TSV or MELD CSV file, and write a confusion-matrix PNG.",
    )
    eval_emotion.add_argument("--data", type=Path, required=True, help="the labelled file")
    eval_emotion.add_argument("--format", choices=[f.value for f in DataFormat])
    eval_emotion.add_argument("--model", default="auto", help=_MODEL_HELP)
    eval_emotion.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help=_PRECISION_HELP
    )
    eval_emotion.add_argument(
        "--confusion", type=Path, help="PNG path (default confusion-FORMAT.png)"
    )
    eval_emotion.add_argument("--json", action="store_true", help="print one JSON object")
    _common(eval_emotion)

    emotion = commands.add_parser(
        "emotion", help="print the emotion reading of a text", description="Read one text."
    )
    emotion.add_argument("text")
    emotion.add_argument("--model", default="auto", help=_MODEL_HELP)
    emotion.add_argument("--precision", choices=PRECISIONS, default="auto", help=_PRECISION_HELP)
    emotion.add_argument("--json", action="store_true", help="print one JSON object")
    _common(emotion)

    _data_commands(commands)

    policy = commands.add_parser(
        "policy", help="check rules, evaluate the learned policy"
    ).add_subparsers(dest="target", required=True, metavar="ACTION")
    check = policy.add_parser(
        "check",
        help="validate a YAML rule file",
        description="Load a rule file as the server would and print its rules, or the first "
        "mistake with its line and how to fix it.",
    )
    check.add_argument("file", type=Path)
    _common(check)
    estimate = policy.add_parser(
        "evaluate",
        help="estimate the learned policy's value from logged decisions",
        description="Off-policy evaluation of the stored bandit on the decisions it served "
        "(their propensities, context features and outcomes): IPS, self-normalised IPS and "
        "doubly robust, beside the rewards the logged decisions earned.",
    )
    estimate.add_argument("--max-weight", type=float, help="clip importance weights (default: no)")
    estimate.add_argument(
        "--offline",
        action="store_true",
        help="also learn a bandit from the older half of the logs and judge both on the newer",
    )
    estimate.add_argument("--tenant", help="whose decisions (default: default)")
    _database(estimate)
    _common(estimate)

    token = commands.add_parser(
        "token",
        help="print a token for a user",
        description="Print a signed token for USER, valid for servers with the same secret "
        "(the same data directory or HEARTLINE_SECRET).",
    )
    token.add_argument("--user", required=True, help="the user id the token carries")
    token.add_argument(
        "--ttl-hours", type=float, default=24.0, help="hours the token stays valid (default 24)"
    )
    _common(token)
    return parser


def _data_commands(commands: Any) -> None:
    db = commands.add_parser("db", help="manage the database").add_subparsers(
        dest="target", required=True, metavar="ACTION"
    )
    upgrade = db.add_parser("upgrade", help="migrate the schema forward (default: newest)")
    upgrade.add_argument("--revision", default="head", help="target revision (default head)")
    downgrade = db.add_parser("downgrade", help="migrate the schema back (default: one step)")
    downgrade.add_argument("--revision", default="-1", help="target revision (default -1)")
    current = db.add_parser("current", help="print the schema revision")
    purge = db.add_parser(
        "purge",
        help="delete rows older than an age",
        description="Delete turns, feedback and finished ledger entries older than the age, "
        "then the sessions and users left empty; workers also do this every "
        "HEARTLINE_PURGE_INTERVAL seconds when HEARTLINE_RETENTION_DAYS is set.",
    )
    purge.add_argument("--older-than-days", type=float, help="default HEARTLINE_RETENTION_DAYS")
    rotate = db.add_parser(
        "rotate-key",
        help="re-encrypt stored messages under the active key",
        description="Re-encrypt every stored message under the first key of "
        "HEARTLINE_ENCRYPTION_KEYS (plain ones are redacted and encrypted too). "
        "Keep the old key after the new one until this has finished.",
    )
    new_key = db.add_parser("new-key", help="print a new encryption key entry (ID:KEY)")
    new_key.add_argument("--id", default="k1", dest="key_id", help="key id (default k1)")
    for parser in (upgrade, downgrade, current, purge, rotate):
        _database(parser)
        _common(parser)

    users = commands.add_parser("users", help="a user's data").add_subparsers(
        dest="target", required=True, metavar="ACTION"
    )
    export = users.add_parser("export", help="print everything held about a user as JSON")
    export.add_argument("user")
    export.add_argument("--out", type=Path, help="write to this file instead")
    forget = users.add_parser("forget", help="erase every row about a user")
    forget.add_argument("user")
    for parser in (export, forget):
        _database(parser)
        parser.add_argument("--tenant", help="the user's tenant (default: default)")
        _common(parser)


def _settings(args: argparse.Namespace) -> Settings:
    names = set(Settings.model_fields)
    return load_settings(**{k: v for k, v in vars(args).items() if k in names})


async def _run_until_signalled(
    role: Role, settings: Settings, on_start: Callable[[Running], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with role(settings) as running:
            on_start(running)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _serve(settings: Settings) -> None:
    from agent.app import authority_for, embedded

    _, created = authority_for(settings)

    def announce(running: Running) -> None:
        if running.gateway is None or running.authority is None:
            raise RuntimeError("the embedded role starts a gateway")
        token = running.authority.issue(_DEMO_USER, ttl_s=_DAY)
        if created:
            print(f"Created a token secret in {settings.data_dir}.")
        print(f"Heartline is listening on {running.gateway.url}")
        print(f"Demo token (user {_DEMO_USER!r}, valid 24 h): {token}")
        command = sys.argv[0] if Path(sys.argv[0]).name == "heartline" else "heartline"
        print(f"Chat with it:  {command} chat" + _chat_flags(settings, running.gateway.port))
        print("Stop with Ctrl+C.", flush=True)

    asyncio.run(_run_until_signalled(embedded, settings, announce))


def _chat_flags(settings: Settings, port: int) -> str:
    """The flags `heartline chat` needs to reach this server and share its secret."""
    defaults = Settings()
    flags = "" if settings.data_dir == defaults.data_dir else f" --data-dir {settings.data_dir}"
    if settings.host not in (defaults.host, "0.0.0.0"):
        flags += f" --host {settings.host}"
    return flags + ("" if port == defaults.port else f" --port {port}")


def _role(name: str, settings: Settings) -> None:
    from agent import app

    role: Role = app.gateway if name == "gateway" else app.worker
    asyncio.run(_run_until_signalled(role, settings, lambda running: None))


def _chat(args: argparse.Namespace, settings: Settings) -> None:
    from agent.app import authority_for
    from agent.chat import chat

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
    from agent.app import authority_for

    authority, created = authority_for(settings)
    if created:
        print(f"Created a token secret in {settings.data_dir}.", file=sys.stderr)
    print(authority.issue(args.user, ttl_s=args.ttl_hours * 3600.0))


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _report(error: HeartlineError | OSError) -> int:
    """One line on stderr instead of a traceback; exit 2 for our errors, 1 for the system's."""
    print(f"heartline: {error}", file=sys.stderr)
    return 2 if isinstance(error, HeartlineError) else 1


def _run(args: argparse.Namespace) -> None:
    settings = _settings(args)
    json_logs = {"auto": None, "json": True, "console": False}[settings.log_format]
    configure_logging(settings.log_level, json=json_logs)
    if args.command == "serve":
        _serve(settings)
    elif args.command in ("gateway", "worker"):
        _role(args.command, settings)
    elif args.command == "chat":
        _chat(args, settings)
    elif args.command in ("train", "eval", "emotion"):
        _emotion_command(args)
    elif args.command == "policy" and args.target == "check":
        _check_rules(args.file)
    elif args.command == "policy":
        from agent.policy_commands import evaluate_policy

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
    from agent.emotion import commands

    if args.command == "train":
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
            confusion=args.confusion,
            progress=not args.json,
        )
        commands.print_evaluation(evaluation, as_json=args.json)
    else:
        commands.print_reading(
            commands.read_text(args.text, model_name=args.model, precision=args.precision),
            as_json=args.json,
        )


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
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except KeyboardInterrupt:
        return 130
    except (HeartlineError, OSError) as exc:
        return _report(exc)
    except BaseExceptionGroup as group:  # raised inside a task group
        leaf = _first_leaf(group)
        if not isinstance(leaf, HeartlineError | OSError):
            raise
        return _report(leaf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
