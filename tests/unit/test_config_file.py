"""Settings files: what they set, where they rank, and every mistake named with its file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError

KEY = "k" * 32


def _write(folder: Path, text: str, name: str = "heartline.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_sets_settings_by_their_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'port = 9100\nemotion_model = "lexicon"\nwrite_max_wait = 0\napi_keys = "acme={KEY}"\n',
    )
    settings = load_settings(config_file=path)
    assert settings.port == 9100
    assert settings.emotion_model == "lexicon"
    assert settings.write_max_wait == 0.0
    assert settings.api_keys is not None
    assert settings.api_keys.get_secret_value() == f"acme={KEY}"
    assert settings.host == "127.0.0.1"  # not in the file: the default


def test_flags_then_environment_then_file_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, 'port = 9100\nhost = "10.0.0.1"\nlog_level = "debug"\n')
    monkeypatch.setenv("HEARTLINE_PORT", "9200")
    monkeypatch.setenv("HEARTLINE_HOST", "10.0.0.2")
    settings = load_settings(config_file=path, port=9300, host=None)
    assert settings.port == 9300  # flag over variable and file
    assert settings.host == "10.0.0.2"  # variable over file
    assert settings.log_level == "debug"  # file over default
    assert settings.log_format == "auto"  # default


def test_heartline_config_names_the_file_and_the_flag_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTLINE_CONFIG", str(_write(tmp_path, "port = 9100\n", "env.toml")))
    assert load_settings().port == 9100
    flagged = _write(tmp_path, "port = 9101\n", "flag.toml")
    assert load_settings(config_file=flagged).port == 9101


def test_an_empty_heartline_config_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTLINE_CONFIG", "")
    with pytest.raises(ConfigError, match="HEARTLINE_CONFIG is empty"):
        load_settings()


def test_relative_paths_are_relative_to_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = tmp_path / "deployment"
    deployment.mkdir()
    path = _write(
        deployment,
        'rules_file = "rules.yaml"\nflow_file = "flows/flow.yaml"\nfaq_file = "../faq.csv"\n'
        'data_dir = "data"\nsystem_prompt_file = "/etc/persona.md"\nlocal_model = "~/model"\n',
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config_file=Path("deployment/heartline.toml"))
    assert settings.rules_file == deployment / "rules.yaml"
    assert settings.flow_file == deployment / "flows" / "flow.yaml"
    assert settings.faq_file == deployment / ".." / "faq.csv"
    assert settings.data_dir == deployment / "data"
    assert settings.system_prompt_file == Path("/etc/persona.md")
    assert settings.local_model == tmp_path / "home" / "model"
    assert load_settings(config_file=path, data_dir=Path("flag")).data_dir == Path("flag")


MISTAKES = [
    ("port = 1\nprot = 2\n", r":2: 'prot' is not a Heartline setting; did you mean port\?$"),
    ("HEARTLINE_DATA_DIR = 'x'\n", ":1: 'HEARTLINE_DATA_DIR' .*; write it as data_dir$"),
    ("vllm-url = 'http://gpu:8000'\n", ":1: 'vllm-url' .*; write it as vllm_url$"),
    ("zzz = 1\n", r":1: 'zzz' is not a Heartline setting; the settings are the HEARTLINE_\*"),
    ("\n[server]\nport = 1\n", r":2: \[server\] is a table; settings are top-level keys"),
    ("port = '8765'\n", r":1: port: Input should be a valid integer; got '8765' \(a string\)$"),
    ("port = 70000\n", ":1: port: Input should be less than or equal to 65535; got 70000"),
    ("token_delay = true\n", r":1: token_delay: .* number; got True \(true or false\)$"),
    ("generator = 'gpt'\n", ":1: generator: Input should be 'templates', 'vllm'"),
    ("tenant = 'a b'\n", ":1: tenant: String should match pattern"),
    ("rules_file = 3\n", ':1: rules_file must be a path in quotes, e.g. rules_file = "file"'),
    ("rules_file = ''\n", ":1: rules_file must be a path in quotes"),
    ("port = \n", r":1: not valid TOML: Invalid value \(column 8\)$"),
    ("log_level = 'info'\nhost = 0.0.0.0\n", r":2: not valid TOML: .*\(column \d+\)$"),
]


@pytest.mark.parametrize(("text", "message"), MISTAKES)
def test_each_mistake_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="^" + re.escape(str(path)) + message):
        load_settings(config_file=path)


def test_a_wrong_secret_is_not_repeated(tmp_path: Path) -> None:
    path = _write(tmp_path, "api_keys = 123456789\n")
    with pytest.raises(ConfigError, match=r"api_keys: .* string; got a number$"):
        load_settings(config_file=path)
    path = _write(tmp_path, "secret = ['hunter2hunter2']\n")
    with pytest.raises(ConfigError, match=r"secret: .*; got an array$") as caught:
        load_settings(config_file=path)
    assert "hunter2" not in str(caught.value)


def test_a_file_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(
        ConfigError, match=r"nowhere\.toml: cannot read the settings file \(No such file"
    ):
        load_settings(config_file=missing)
    with pytest.raises(ConfigError, match=r"cannot read the settings file \(Is a directory\)"):
        load_settings(config_file=tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"host = '\xe9'\n")
    with pytest.raises(ConfigError, match=r"latin\.toml: the settings file is not UTF-8 text"):
        load_settings(config_file=latin)


def test_a_setting_missing_beside_the_files_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "generator = 'vllm'\nmodel = 'm'\n")
    with pytest.raises(ConfigError, match=f"^--generator vllm needs --vllm-url .*and {path}$"):
        load_settings(config_file=path)
    with_url = load_settings(config_file=path, vllm_url="http://gpu:8000/v1")
    assert (with_url.generator, with_url.model) == ("vllm", "m")


def test_a_wrong_value_in_the_file_stops_even_where_a_variable_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is checked whole, so a mistake in it surfaces now, not when the variable goes."""
    path = _write(tmp_path, "port = 70000\n")
    monkeypatch.setenv("HEARTLINE_PORT", "9100")
    with pytest.raises(ConfigError, match="port: Input should be less than or equal to 65535"):
        load_settings(config_file=path)
