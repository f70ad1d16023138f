"""`heartline init`'s files: valid as written, the shipped defaults, never overwritten unasked."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from agent.config import Settings, load_settings
from agent.errors import ConfigError
from agent.gateway.api_keys import ApiKeys
from agent.generation.faq_knowledge import EXAMPLE_KNOWLEDGE, read_knowledge
from agent.generation.prompts import PromptBuilder, PromptSettings
from agent.handoff.config import WebhookConfig
from agent.scaffold import write_deployment
from policies.flows import load_flow
from policies.rule_files import DEFAULT_RULES_FILE, FileRule, load_rules

NAMES = ["heartline.toml", "rules.yaml", "flow.yaml", "faq.yaml", "persona.md"]
# A commented-out setting: `# key = value`, the value up to an inline comment.
COMMENTED = re.compile(r"^# (?P<key>[a-z_]+) = (?P<value>.+?)(?P<note>[ \t]+#.*)?$", re.MULTILINE)


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    folder = tmp_path / "deployment"
    written = write_deployment(folder)
    assert [file.name for file in written] == NAMES
    return folder


def _unplaced(rules: tuple[FileRule, ...]) -> list[FileRule]:
    return [dataclasses.replace(rule, line=0) for rule in rules]


def test_the_settings_file_points_at_the_files_beside_it(deployment: Path) -> None:
    settings = load_settings(config_file=deployment / "heartline.toml")
    assert settings.rules_file == deployment / "rules.yaml"
    assert settings.flow_file == deployment / "flow.yaml"
    assert settings.faq_file == deployment / "faq.yaml"
    assert settings.system_prompt_file == deployment / "persona.md"
    assert (settings.generator, settings.port, settings.api_keys) == ("templates", 8765, None)


def test_the_files_are_the_shipped_defaults_and_load(deployment: Path) -> None:
    assert _unplaced(load_rules(deployment / "rules.yaml")) == _unplaced(
        load_rules(DEFAULT_RULES_FILE)
    )
    assert load_flow(deployment / "flow.yaml") == load_flow()
    assert read_knowledge(deployment / "faq.yaml") == read_knowledge(EXAMPLE_KNOWLEDGE)
    persona = PromptBuilder(PromptSettings(system_prompt=deployment / "persona.md"))
    assert persona.system_prompt == PromptBuilder(PromptSettings()).system_prompt
    assert "<!--" in (deployment / "persona.md").read_text(encoding="utf-8")


def test_every_commented_setting_is_valid_and_shows_its_default(deployment: Path) -> None:
    path = deployment / "heartline.toml"
    text = path.read_text(encoding="utf-8")
    commented = {match["key"]: match for match in COMMENTED.finditer(text)}
    assert {"data_dir", "database_url", "emotion_model", "generator", "vllm_url", "model"} <= set(
        commented
    )
    assert {"api_keys", "handoff_webhook_url", "handoff_webhook_secret", "retention_days"} <= set(
        commented
    )
    path.write_text(COMMENTED.sub(r"\g<key> = \g<value>\g<note>", text), encoding="utf-8")
    settings = load_settings(config_file=path)
    defaults = Settings()
    for key in ("host", "port", "data_dir", "emotion_model", "generator", "log_level"):
        assert getattr(settings, key) == getattr(defaults, key), key
    assert settings.first_token_timeout == defaults.first_token_timeout
    assert settings.vllm_url == "http://127.0.0.1:8000/v1"
    assert settings.api_keys is not None
    assert len(ApiKeys.parse(settings.api_keys.get_secret_value())) == 1
    assert WebhookConfig.from_settings(settings) is not None


def test_each_deployment_gets_its_own_secrets(tmp_path: Path) -> None:
    def secrets(folder: Path) -> list[str]:
        write_deployment(folder)
        text = (folder / "heartline.toml").read_text(encoding="utf-8")
        return re.findall(r'^# (?:api_keys|handoff_webhook_secret) = "(.+)"$', text, re.MULTILINE)

    first, second = secrets(tmp_path / "a"), secrets(tmp_path / "b")
    assert len(first) == len(second) == 2
    assert not set(first) & set(second)
    assert all(len(secret) >= 32 for secret in first)


def test_the_settings_file_is_readable_by_its_owner_only(deployment: Path) -> None:
    assert (deployment / "heartline.toml").stat().st_mode & 0o777 == 0o600
    assert (deployment / "rules.yaml").stat().st_mode & 0o077 != 0o077  # not private


def test_existing_files_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"flow\.yaml already exists; pass --force") as caught:
        write_deployment(tmp_path)
    assert str(tmp_path / "flow.yaml") in str(caught.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["flow.yaml"]
    assert (tmp_path / "flow.yaml").read_text(encoding="utf-8") == "mine\n"


def test_force_overwrites_and_makes_the_settings_file_private_again(deployment: Path) -> None:
    settings_file = deployment / "heartline.toml"
    settings_file.chmod(0o644)
    (deployment / "rules.yaml").write_text("mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"heartline\.toml, .*persona\.md already exist"):
        write_deployment(deployment)
    write_deployment(deployment, force=True)
    assert load_rules(deployment / "rules.yaml")
    assert settings_file.stat().st_mode & 0o777 == 0o600
