"""The grammar of the `heartline` command: its subcommands, flags and help texts.

Flags named after a setting (`agent.config.Settings`) override it; the rest belong to
their command. `agent.cli` runs what is parsed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent import __version__
from agent.emotion.domain import DOMAINS
from agent.emotion.precision import PRECISIONS

__all__ = ["DATA_FORMATS", "DEMO_OPERATOR", "DEMO_USER", "build_parser"]

DEMO_USER = "demo"
DEMO_OPERATOR = "staff"
# The values of `agent.training.emotion.datasets.DataFormat`, named here so that building
# the parser never imports the training package (a test holds the two equal).
DATA_FORMATS = ("goemotions", "smp2020", "meld", "support")
_MODEL_HELP = (
    "auto (the shipped English and Chinese models, by language), open (the same without "
    "the Chinese model made from research-use-only data), neural, chinese, lexicon, "
    "a folder written by `heartline train emotion`, or a Hugging Face sequence-classification "
    "model (folder or hub id)"
)
_DOMAIN_HELP = (
    "support: read as customer-service text (cue words and the support heads; the "
    "default), general: the model's own reading"
)
_PRECISION_HELP = (
    "number format of the neural English model: int8 (ONNX Runtime, less than half the "
    "CPU), float32 (ONNX Runtime) or bfloat16 (torch); auto: int8 where the model has "
    "thresholds tuned for it, else float32"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML settings file, one key per setting (port = 8765); flags and "
        "HEARTLINE_* variables override it (default: HEARTLINE_CONFIG, else none)",
    )
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
    parser.add_argument("--emotion-domain", choices=DOMAINS, help=_DOMAIN_HELP)
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
    parser.add_argument(
        "--vllm-url",
        help="the vLLM server's URL, with or without /v1 as OpenAI clients take it: "
        "http://gpu:8000 or http://gpu:8000/v1 (a proxy's prefix stays: http://proxy/llm/v1)",
    )
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
        "--guard-release",
        choices=["word", "sentence"],
        help="how the output guard lets an LLM's reply go: word by word (default) or a "
        "whole sentence at a time",
    )
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


def build_parser() -> argparse.ArgumentParser:
    """Every command, its flags and their help."""
    parser = argparse.ArgumentParser(
        prog="heartline",
        description="Heartline: a real-time, emotion-aware conversational agent. "
        "Every setting can also be given as HEARTLINE_<NAME> in the environment, or as "
        "name = value in a settings file (--config FILE), e.g. data_dir for --data-dir.",
    )
    parser.add_argument("--version", action="version", version=f"heartline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="write a deployment folder: settings, rules, flow, FAQ and persona",
        description="Write DIR/heartline.toml and the rules, conversation flow, FAQ and "
        "persona it points at: commented copies of the shipped ones, ready for "
        "`heartline serve --config DIR/heartline.toml`. If any of them exists, nothing is "
        "written unless --force.",
    )
    init.add_argument("folder", type=Path, metavar="DIR", help="made if missing")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")

    serve = commands.add_parser(
        "serve",
        help="run everything on this machine (no network services needed)",
        description="Run gateway and worker together: in-process bus, SQLite in the data "
        "directory, offline emotion model and template replies. One serving process per CPU "
        "core (--workers), sharing the port and one bus. Prints a demo token.",
    )
    _listen(serve)
    _database(serve)
    _emotion_model(serve)
    _rules_file(serve)
    _generation(serve)
    serve.add_argument(
        "--token-delay", type=float, help="seconds between streamed template pieces (default 0)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="serving processes sharing the port (default: one per CPU core; 1: this process)",
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
    gateway.add_argument(
        "--database-url",
        help="the workers' database, read by the operator console for users' histories "
        "(default: none; the console then shows live sessions only)",
    )
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
        description="A terminal client: stream replies from a Heartline server and show the "
        "emotion it read. Without --token, a token for --user is made from the data "
        "directory's secret.",
    )
    chat.add_argument("--url", help="server URL (default ws://HOST:PORT/ws)")
    chat.add_argument("--host", help="the server's host to connect to (default 127.0.0.1)")
    chat.add_argument("--port", type=int, help="the server's port (default 8765)")
    chat.add_argument("--token", help="a token from `heartline token`")
    chat.add_argument("--user", default=DEMO_USER, help="user to chat as (default demo)")
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
    train_support = train.add_parser(
        "support",
        help="train the support heads of the shipped emotion models",
        description="Train the support head of each model --model uses (auto: the English "
        "and the Chinese model; open: the English model and the Chinese lexicon) on a "
        "support TSV (text, labels, language), by default the shipped training set. "
        "Deterministic. Writes one folder per language and model under --out, where "
        "serving looks for them by default.",
    )
    train_support.add_argument(
        "--data", type=Path, help="a support TSV (default: the shipped training set)"
    )
    train_support.add_argument("--model", choices=["auto", "open"], default="auto")
    train_support.add_argument("--out", type=Path, help="default: the package's model folder")
    _common(train_support)

    evaluate = commands.add_parser("eval", help="evaluate a model").add_subparsers(
        dest="target", required=True, metavar="TARGET"
    )
    eval_emotion = evaluate.add_parser(
        "emotion",
        help="F1 of an emotion model on a labelled file",
        description="Print macro/micro-F1 per label space and per class on a GoEmotions TSV, "
        "SMP2020 TSV or MELD CSV file, and write a confusion-matrix PNG. On a support TSV "
        "(text, labels, language; --format support) print per language the accuracy of the "
        "dominant label's Ekman group and the Ekman-7 macro-F1, with a PNG per language. "
        "Prints where each PNG went.",
    )
    eval_emotion.add_argument(
        "--data",
        type=Path,
        help="the labelled file (required, except with --format support: the shipped support set)",
    )
    eval_emotion.add_argument(
        "--format", choices=DATA_FORMATS, help="the file's format (default: told by its first line)"
    )
    eval_emotion.add_argument("--model", default="auto", help=_MODEL_HELP)
    eval_emotion.add_argument(
        "--domain",
        choices=DOMAINS,
        help="support or general (default: support for --format support, else general: "
        "research data is not customer-service text)",
    )
    eval_emotion.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help=_PRECISION_HELP
    )
    eval_emotion.add_argument(
        "--confusion",
        type=Path,
        help="PNG path (default confusion-FORMAT.png; support: -LANG added before .png)",
    )
    eval_emotion.add_argument("--json", action="store_true", help="print one JSON object")
    _common(eval_emotion)

    emotion = commands.add_parser(
        "emotion", help="print the emotion reading of a text", description="Read one text."
    )
    emotion.add_argument("text")
    emotion.add_argument("--model", default="auto", help=_MODEL_HELP)
    emotion.add_argument("--domain", choices=DOMAINS, default="support", help=_DOMAIN_HELP)
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
        help="print a token for a user or an operator",
        description="Print a signed token, valid for servers with the same secret (the same "
        "data directory or HEARTLINE_SECRET): for a user (the WebSocket, the web chat, and the "
        "OpenAI-compatible API as that user), or for staff (the operator console and API).",
    )
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user id the token carries")
    who.add_argument("--operator", metavar="NAME", help="an operator's token, for staff NAME")
    token.add_argument(
        "--tenant", help="the tenant the token acts in (default: the server's HEARTLINE_TENANT)"
    )
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
