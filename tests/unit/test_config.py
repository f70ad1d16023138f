from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTLINE_PORT", "9001")
    monkeypatch.setenv("HEARTLINE_HOST", "0.0.0.0")
    settings = load_settings(port=9002, host=None)
    assert settings.port == 9002
    assert settings.host == "0.0.0.0"


def test_the_database_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path / 'heartline.db'}"
    url = "postgresql+asyncpg://db/x"
    assert load_settings(database_url=url).resolved_database_url() == url


def test_invalid_values_say_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings(port=70000)
    monkeypatch.setenv("HEARTLINE_TOKEN_DELAY", "-1")
    with pytest.raises(ConfigError, match="token_delay"):
        load_settings()


def test_a_misspelt_variable_is_refused_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTLINE_DATABASE_ULR", "sqlite://")
    with pytest.raises(ConfigError, match="did you mean HEARTLINE_DATABASE_URL"):
        load_settings()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"generator": "local"}, "^--generator local needs --local-model"),
        ({"generator": "vllm-engine"}, "^--generator vllm-engine needs --model"),
        ({"generator": "vllm", "model": "m"}, "^--generator vllm needs --vllm-url"),
        ({"generator": "vllm", "vllm_url": "http://gpu:8000"}, "^--generator vllm needs"),
    ],
)
def test_an_llm_generator_without_its_model_is_refused(given: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**given)


def test_an_llm_generator_with_its_model_is_taken() -> None:
    served = load_settings(generator="vllm", vllm_url="http://gpu:8000", model="m")
    assert (served.vllm_url, served.model) == ("http://gpu:8000", "m")
    assert load_settings(generator="local", local_model=Path("model")).local_model == Path("model")
