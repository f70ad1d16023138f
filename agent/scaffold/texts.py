"""The files of a new deployment: the shipped defaults, each under a header that explains it.

The rules, flow, FAQ and persona are the files Heartline ships (so they are valid as
written and stay in step with the defaults); their own opening comment is replaced by
one written for a deployment folder. Lists of choices in the headers come from the
enums the loaders check against, so they cannot drift from what is accepted.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Final

from agent.config import Settings
from agent.generation.faq_knowledge import EXAMPLE_KNOWLEDGE
from agent.generation.prompts import DEFAULT_SYSTEM_PROMPT
from agent.values import Action, Strategy, Tone, Trajectory, Trend
from policies.flows import DEFAULT_FLOW_FILE
from policies.rule_files import DEFAULT_RULES_FILE

__all__ = [
    "FAQ_FILE",
    "FLOW_FILE",
    "PERSONA_FILE",
    "RULES_FILE",
    "SETTINGS_FILE",
    "faq_text",
    "flow_text",
    "persona_text",
    "rules_text",
    "settings_text",
]

SETTINGS_FILE: Final = "heartline.toml"
RULES_FILE: Final = "rules.yaml"
FLOW_FILE: Final = "flow.yaml"
FAQ_FILE: Final = "faq.yaml"
PERSONA_FILE: Final = "persona.md"


def _choices(kind: type[StrEnum]) -> str:
    return ", ".join(member.value for member in kind)


def _shipped_body(path: Path) -> str:
    """A shipped YAML file without its opening comment, which speaks of the shipped copy."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return "".join(lines[start:]).lstrip("\n")


def rules_text() -> str:
    return f"""\
# The rules of this deployment's rule policy (heartline.toml: rules_file).
# `heartline init` wrote them from Heartline's shipped rules. After editing, check them:
#
#     heartline policy check {RULES_FILE}
#
# which lists the rules or names the first mistake, its line and how to fix it; serve
# and worker refuse to start with a mistake in the file. docs/policies.md has it all.
#
# How the rules take part: at every turn the first rule whose conditions all hold
# decides for the rule policy; when none holds, it has nothing to say. Crisis safety
# and the flow's deciding states (flow.yaml) stand above the rules; a rule's handoff
# or end stands above the learned policy, whose replies take over from the rules'
# replies once it has learned from 100 turns. docs/policies.md#the-ensemble has it all.
#
# version: 1               the format of this file
# rules:                   a list; each rule has four parts:
#   name:    lower-case letters, digits and _; unique; shown as the deciding rule
#   when:    conditions, all of which must hold:
#              emotion: {{labels: [...], at_least: X, over: [...], turns: N}}
#                  the labels' score is at least X (0 to 1), and at least the score of
#                  `over` if given, on this turn and the N - 1 turns before it
#              valence, arousal, intensity: {{at_least: X, below: Y}}   this turn's reading
#              matches: 'regular expression'     the user's text (any case; Chinese too)
#              trajectory: escalating            this conversation's mood, or a list of:
#                  {_choices(Trajectory)}
#              trend: deteriorating              the user's history, or a list of:
#                  {_choices(Trend)}
#              returning: true                   the user has earlier sessions
#              mood_streak: {{mood: anger, at_least: 2}}  the user's last 2 sessions (or
#                  more) in a row had this mood
#              turn: {{at_least: N, at_most: M}}   the conversation's turn number
#              hour: {{from: 22, to: 6}}           the turn's UTC hour, wrapping at midnight
#              all: [...], any: [...], not: {{...}}, always: true
#   then:    action: {_choices(Action)}
#            strategy: {_choices(Strategy)}
#            tone: {_choices(Tone)}
#            confidence: 0 to 1
#   reason:  a sentence shown with the decision; {{score}}, {{streak}}, {{dominant}},
#            {{turns}} and {{sessions}} are filled in
#
# Emotion labels are GoEmotions' 27 emotions and neutral (anger, annoyance, joy, ...),
# or an Ekman group meaning all of its labels: anger, disgust, fear, joy, sadness,
# surprise, neutral. `&joyful` below names a list and `*joyful` repeats it (YAML anchors).

{_shipped_body(DEFAULT_RULES_FILE)}"""


def flow_text() -> str:
    return f"""\
# The conversation flow of this deployment (heartline.toml: flow_file): a state machine
# over the conversation. `heartline init` wrote it from Heartline's shipped
# customer-service flow: greet -> understand the problem -> resolve -> confirm -> close,
# and escalate (to a person). docs/policies.md#conversation-flows has it all; serve and
# worker check the file at start-up and name the line of a mistake.
#
# version: 1       the format of this file
# flow:            the flow's name (lower-case letters, digits, _), shown in decisions
# start:           the state a new conversation starts in
# states:          a list; each state has
#   name:          lower-case letters, digits, _; unique
#   transitions:   tried in order at every turn; the first whose `when` holds moves the
#                  conversation `to` that state. `when` takes the conditions of rules.yaml
#   then, reason:  optional; a state with them decides the turn itself, as a rule does
#                  (then: action, strategy, tone, confidence). States without them leave
#                  the decision to the rules and the learned policy.
#
# The state reaches the policies (the learned policy reads it as a feature) and is
# stored with each turn, so a conversation keeps its place when another worker takes it.
# `&human` below names a condition and `*human` repeats it (YAML anchors).

{_shipped_body(DEFAULT_FLOW_FILE)}"""


def faq_text() -> str:
    return f"""\
# Questions and answers of this deployment (heartline.toml: faq_file). With the template
# generator (the default), a user's message that asks one of these questions gets its
# answer, and the templates answer the rest; with an LLM, the answers are part of its
# fallback. docs/generation.md has more. `heartline init` wrote Heartline's example
# entries for a fictional online shop: replace the answers with your own policies,
# links and hours before real use.
#
# version: 1       the format of this file
# entries:         a list; each entry has
#   id:            lower-case letters, digits and _; unique
#   questions:     per language (en, zh), the ways customers ask it. English questions
#                  are matched by meaning, Chinese ones by shared characters: give
#                  Chinese entries a few phrasings with the words customers type
#   answers:       per language that has questions, the answer. It is framed by the
#                  turn's decision (an apology first for an angry user, for example)
#
# Serve and worker check the file at start-up and name the entry of a mistake.

{_shipped_body(EXAMPLE_KNOWLEDGE)}"""


def persona_text() -> str:
    return f"""\
<!--
The persona of this deployment (heartline.toml: system_prompt_file): the system prompt
an LLM generator (generator = "vllm", "vllm-engine" or "local") is given at every turn.
The template generator, the default, does not read it. `heartline init` wrote it from
Heartline's shipped persona; edit it freely.

- {{persona}} is replaced by the assistant's name, Heartline.
- After this text Heartline adds, for each turn, how to answer it: the strategy and the
  tone the policies chose, the emotion it read, the user's history and the language to
  reply in. The prompt need not repeat those.
- Comments like this one are removed before the prompt is sent.
-->

{DEFAULT_SYSTEM_PROMPT.read_text(encoding="utf-8")}"""


def _default(name: str) -> object:
    return Settings.model_fields[name].get_default(call_default_factory=True)


def _toml(value: object) -> str:
    """A default as TOML: numbers and words as they are, strings quoted."""
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _home_relative(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def settings_text(*, api_key: str | None = None, webhook_secret: str | None = None) -> str:
    """The settings file; a fresh API key and webhook secret unless given (tests give them)."""
    api_key = api_key or secrets.token_urlsafe(32)
    webhook_secret = webhook_secret or secrets.token_urlsafe(32)
    data_dir = _default("data_dir")
    assert isinstance(data_dir, Path)
    xdg = " ($XDG_DATA_HOME/heartline)" if os.environ.get("XDG_DATA_HOME") else ""
    return f"""\
# Heartline's settings for this deployment, written by `heartline init`. From this
# folder, start it with
#
#     heartline serve --config {SETTINGS_FILE}
#
# (gateway, worker and the other commands take --config too). Each key is a setting, named like its
# HEARTLINE_<NAME> environment variable in lower case; docs/operations.md lists them
# all. A command-line flag wins over a value here, and so does an environment variable.
# Relative paths are relative to this file's folder, so the folder can move as a whole.
#
# A line starting with # is a comment; the settings commented out show their default
# (or, for those unset by default, an example). Remove the # to set one.
#
# This file may hold secrets: keep it readable by the service's user only (init made
# it so; otherwise `chmod 600 {SETTINGS_FILE}`).

# -- This deployment's files -----------------------------------------------------------
# The rules of the rule policy; check them with `heartline policy check {RULES_FILE}`.
rules_file = "{RULES_FILE}"
# The conversation flow: greet, understand, resolve, confirm, close, escalate.
flow_file = "{FLOW_FILE}"
# Questions and answers, answered before the templates (English and Chinese).
faq_file = "{FAQ_FILE}"
# The system prompt of an LLM generator; the templates do not use it.
system_prompt_file = "{PERSONA_FILE}"

# -- Where clients connect -------------------------------------------------------------
# "0.0.0.0" accepts connections from other machines.
# host = {_toml(_default("host"))}
# port = {_default("port")}

# -- State -----------------------------------------------------------------------------
# The folder of heartline.db and secret.key (the secret that signs tokens); by
# default{xdg} the one below. "data" keeps them in this deployment's folder.
# data_dir = "{_home_relative(data_dir)}"
# A database shared by several workers; by default heartline.db in data_dir.
# database_url = "postgresql+asyncpg://heartline@db-host/heartline"
# Conversations older than this many days are deleted; by default they are kept.
# retention_days = 90

# -- Emotion ---------------------------------------------------------------------------
# auto (the shipped English and Chinese models, by language), open (the same without the
# Chinese model made from research-use-only data), neural, chinese, lexicon, a model
# folder written by `heartline train emotion`, or a Hugging Face model (a hub id, or a
# folder); give a folder as an absolute path.
# emotion_model = {_toml(_default("emotion_model"))}
# support: read messages as customer-service text; general: the model's own reading.
# emotion_domain = {_toml(_default("emotion_domain"))}

# -- Replies ---------------------------------------------------------------------------
# templates: offline, the default. vllm: an LLM served by `vllm serve MODEL` at vllm_url
# (with or without /v1), the templates answering when it is slow or down. local: a
# transformers model folder (local_model). vllm-engine: vLLM in this process (a GPU).
# generator = {_toml(_default("generator"))}
# vllm_url = "http://127.0.0.1:8000/v1"
# model = "Qwen/Qwen2.5-1.5B-Instruct"
# Seconds to wait for the LLM's first word before the templates answer.
# first_token_timeout = {_default("first_token_timeout")}

# -- The OpenAI-compatible API (/v1/chat/completions) ---------------------------------
# Keys for your backends, each acting for a tenant: "TENANT=KEY,TENANT=KEY". The key
# below was made at random for this deployment; by default there are none.
# api_keys = "default={api_key}"

# -- Handoffs to a help desk (docs/handoff.md) -----------------------------------------
# Each handoff is posted to this URL, signed (HMAC-SHA256) with the secret, which was
# made at random for this deployment; give your help desk the same one. By default
# handoffs are not posted.
# handoff_webhook_url = "https://helpdesk.example.com/hooks/heartline"
# handoff_webhook_secret = "{webhook_secret}"

# -- Logging ---------------------------------------------------------------------------
# log_level = {_toml(_default("log_level"))}      # debug, info, warning, error
# log_format = {_toml(_default("log_format"))}     # auto: key-value in a terminal, else JSON lines
"""
