"""Settings: read once at the CLI edge from flags, `HEARTLINE_*` variables and a settings
file, then passed down.

Precedence: command-line flag, then environment variable, then the settings file
(`--config FILE` or `HEARTLINE_CONFIG`; `agent.config_file`), then the default.
Every timeout and limit has a finite default; `heartline serve` needs none set.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from agent.config_file import read_settings_file
from agent.errors import ConfigError
from memory.crypto import TextCipher

__all__ = ["CONFIG_VARIABLE", "Settings", "default_data_dir", "load_settings"]

# Names the settings file when --config is not given; not a setting itself.
CONFIG_VARIABLE = "HEARTLINE_CONFIG"


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/heartline`, else `~/.local/share/heartline`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "heartline"


class Settings(BaseSettings):
    """Every setting of every role; each is also `HEARTLINE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HEARTLINE_", frozen=True, extra="forbid")

    # Where clients connect (serve, gateway) or where chat connects to.
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    # Serving processes of `heartline serve`, sharing its port and one bus between them;
    # None: one per CPU core this process may use
    workers: int | None = Field(default=None, ge=1, le=256)
    # State
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    secret: SecretStr | None = None
    # Write-behind: turns are committed in batches at most this many seconds after
    # they are accepted; a crash loses at most the turns accepted in that window
    # (never more than write_queue of them). A clean stop writes everything.
    write_max_wait: float = Field(default=0.02, ge=0.0, le=5.0)
    write_queue: int = Field(default=10_000, ge=1, le=1_000_000)
    # Privacy: whose rows this process reads and writes; the keyring that encrypts
    # message text ("ID:KEY,..." with the active key first; `heartline db new-key`);
    # how long rows are kept (None: for ever) and how often workers purge older ones.
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    encryption_keys: SecretStr | None = None
    retention_days: float | None = Field(default=None, gt=0)
    purge_interval: float = Field(default=3600.0, gt=0)
    # Distributed roles
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # TLS to the broker: its CA (TLS is on when set), and a client certificate and key
    # for brokers that ask for one (docs/hardening.md)
    mqtt_tls_ca_file: Path | None = None
    mqtt_tls_cert_file: Path | None = None
    mqtt_tls_key_file: Path | None = None
    worker_group: str = Field(default="workers", pattern=r"^[A-Za-z0-9_-]+$")
    probe_port: int | None = Field(default=None, ge=0, le=65535)
    turn_lease: float = Field(default=30.0, gt=0, le=3600)
    redeliver_after: float = Field(default=10.0, gt=0, le=3600)
    # Emotion: auto, open, neural, chinese, lexicon, a folder written by `heartline train
    # emotion`, or a Hugging Face model (folder or hub id); read for customer-support text
    # (support: cue words and the support heads) or as the model reads it (general)
    emotion_model: str = Field(default="auto", min_length=1)
    emotion_domain: Literal["support", "general"] = "support"
    # int8: ONNX Runtime, integer products; float32: ONNX Runtime; bfloat16: torch;
    # auto: int8 where the model has thresholds tuned for it, else float32
    emotion_precision: Literal["auto", "float32", "int8", "bfloat16"] = "auto"
    # Policies: a YAML rule file replacing the shipped rules (docs/policies.md); the
    # learned bandit's reward weights and how often workers merge what they learned.
    rules_file: Path | None = None
    # The conversation flow (a YAML state machine); unset: the shipped customer-service flow
    flow_file: Path | None = None
    reward_feedback_weight: float = Field(default=1.0, ge=0.0)
    reward_valence_weight: float = Field(default=1.0, ge=0.0)
    policy_sync_interval: float = Field(default=30.0, gt=0)
    # Generation: templates (offline), or an LLM (behind vLLM's OpenAI-compatible API,
    # vLLM's engine in this process, or a local transformers model) with the templates
    # as the fallback. The first-token timeout bounds how long a user waits before the
    # fallback answers; the system prompt file replaces the shipped persona.
    generator: Literal["templates", "vllm", "vllm-engine", "local"] = "templates"
    vllm_url: str | None = None
    model: str | None = None
    vllm_api_key: SecretStr | None = None
    # Streams open to the vLLM server at once, per serving process; unset: as many as
    # turns in flight
    vllm_max_connections: int | None = Field(default=None, ge=1)
    first_token_timeout: float = Field(default=8.0, gt=0, le=120)
    system_prompt_file: Path | None = None
    # A transformers causal LM directory, for `local` (CPU development, small models)
    local_model: Path | None = None
    # Questions and answers the offline layer answers from (docs/generation.md); unset: none
    faq_file: Path | None = None
    # How the output guard lets an LLM's reply go: word by word (as soon as nothing
    # still to come can change a word) or a whole sentence at a time
    guard_release: Literal["word", "sentence"] = "word"
    token_delay: float = Field(default=0.0, ge=0.0, le=1.0)
    # Gateway limits
    frame_limit_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    messages_per_second: float = Field(default=10.0, gt=0)
    message_burst: int = Field(default=20, ge=1)
    idle_timeout: float = Field(default=300.0, gt=0)
    # How long a reply may wait for a client that reads nothing before it is closed (1013)
    send_timeout: float = Field(default=10.0, gt=0, le=3600)
    # Admission control, per serving process: beyond this many turns in flight, or while
    # every turn started lately waited this long for a worker, new turns get `overloaded`
    max_turns_in_flight: int = Field(default=1000, ge=1)
    max_turn_wait: float = Field(default=5.0, gt=0, le=3600)
    # WebSocket permessage-deflate: off by default, since reply deltas are small frames
    # whose compression costs more CPU and per-connection memory than it saves bytes
    ws_compression: bool = False
    # HTTP: the largest request body read; how long an HTTP API user's conversation
    # stays open without a request before the next request starts a new session
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    chat_session_idle: float = Field(default=1800.0, gt=0)
    # API keys of the OpenAI-compatible API, each for a tenant: "TENANT=KEY,..."
    # (keys of at least 24 characters; docs/http-api.md)
    api_keys: SecretStr | None = None
    # Workers say they are alive this often; gateways count a worker as gone after
    # three intervals without a word, and refuse turns at once while none is there;
    # the other workers take its claimed turns over after four
    worker_beat_interval: float = Field(default=0.5, gt=0, le=60)
    # Handoffs to a help desk: a webhook URL and the secret its requests are signed with
    # (HMAC-SHA256), how long one attempt may take and how many attempts, with backoff
    handoff_webhook_url: str | None = None
    handoff_webhook_secret: SecretStr | None = None
    handoff_webhook_timeout: float = Field(default=5.0, gt=0, le=120)
    handoff_webhook_attempts: int = Field(default=8, ge=1, le=100)
    # Logging
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @model_validator(mode="after")
    def _generator_is_complete(self) -> Self:
        """Refuse an LLM generator without what it needs before anything starts or loads."""
        if self.generator == "local" and self.local_model is None:
            raise ValueError("--generator local needs --local-model (a model directory)")
        if self.generator == "vllm-engine" and not self.model:
            raise ValueError(
                "--generator vllm-engine needs --model (a Hugging Face id or a model folder)"
            )
        if self.handoff_webhook_url is not None and self.handoff_webhook_secret is None:
            raise ValueError(
                "HEARTLINE_HANDOFF_WEBHOOK_URL needs HEARTLINE_HANDOFF_WEBHOOK_SECRET (in a "
                "settings file: handoff_webhook_secret), the shared secret its requests are "
                "signed with"
            )
        if self.generator == "vllm" and not (self.vllm_url and self.model):
            raise ValueError(
                "--generator vllm needs --vllm-url (the server's URL, e.g. "
                "http://gpu-host:8000 or http://gpu-host:8000/v1) and --model (the name "
                "`vllm serve` was given)"
            )
        return self

    def sqlite_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'heartline.db'}"

    def resolved_database_url(self) -> str:
        """The configured database, or the SQLite file in the data directory."""
        return self.database_url or self.sqlite_url()

    def cipher(self) -> TextCipher | None:
        """The keyring that encrypts message text, if one is configured."""
        if self.encryption_keys is None:
            return None
        return TextCipher.from_spec(self.encryption_keys.get_secret_value())


def _check_environment() -> None:
    """A misspelt `HEARTLINE_*` variable would be silently ignored: refuse it instead."""
    known = {f"HEARTLINE_{name.upper()}" for name in Settings.model_fields} | {CONFIG_VARIABLE}
    for variable in sorted(os.environ):
        if variable.startswith("HEARTLINE_") and variable not in known:
            close = difflib.get_close_matches(variable, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{variable} is not a Heartline setting{hint}")


def _config_file(given: Path | None) -> Path | None:
    """The settings file: `--config`, else `HEARTLINE_CONFIG`, else none."""
    if given is not None:
        return given
    named = os.environ.get(CONFIG_VARIABLE)
    if named is None:
        return None
    if not named.strip():
        raise ConfigError(f"{CONFIG_VARIABLE} is empty; name a settings file or unset it")
    return Path(named)


def load_settings(*, config_file: Path | None = None, **overrides: object) -> Settings:
    """Settings from the flags given (None = not given), the environment and a settings file.

    `config_file` is `--config`; without it `HEARTLINE_CONFIG` names the file, if set.
    """
    _check_environment()
    path = _config_file(config_file)
    given: dict[str, object] = {}
    if path is not None:
        from_file = read_settings_file(path, Settings.model_fields)
        from_environment = EnvSettingsSource(Settings)()  # the same names Settings reads
        given = {name: v for name, v in from_file.items() if name not in from_environment}
    given |= {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if len(errors) == 1 and not errors[0]["loc"] and errors[0]["type"] == "value_error":
            message = str(errors[0]["ctx"]["error"])  # whole-settings check
            raise ConfigError(message + _sources(path, brief=True)) from exc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in errors
        )
        raise ConfigError(f"invalid settings ({problems}){_sources(path)}") from exc


def _sources(path: Path | None, *, brief: bool = False) -> str:
    """Where to look: the settings come from the flags, the variables and maybe a file."""
    if path is None:
        return "" if brief else "; check the flags and HEARTLINE_* variables"
    return f"; check the flags, HEARTLINE_* variables and {path}"
