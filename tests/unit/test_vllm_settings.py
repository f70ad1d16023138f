"""Settings of the vLLM client: each mistake a `ConfigError` that says what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import ConfigError
from agent.generation.vllm import VllmSettings


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "127.0.0.1:8000"},
        {"base_url": "http://127.0.0.1:8000/v1/chat/completions"},
        {"model": ""},
        {"first_token_timeout_s": 0.0},
        {"total_timeout_s": float("inf")},
        {"retries": -1},
        {"max_connections": 0},
        {"temperature": 3.0},
    ],
)
def test_bad_vllm_settings_say_what_to_fix(overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {"base_url": "http://127.0.0.1:8000", "model": "m"}
    with pytest.raises(ConfigError):
        VllmSettings(**(values | overrides))


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("http://gpu:8000", "http://gpu:8000"),
        ("http://gpu:8000/", "http://gpu:8000"),
        ("http://gpu:8000/v1", "http://gpu:8000"),
        ("http://gpu:8000/v1/", "http://gpu:8000"),
        ("https://proxy/llm/v1", "https://proxy/llm"),
        ("https://proxy/llm/", "https://proxy/llm"),
        ("http://v1:8000/v1", "http://v1:8000"),
    ],
)
def test_the_url_is_taken_with_or_without_v1(given: str, root: str) -> None:
    assert VllmSettings(base_url=given, model="m").base_url == root
