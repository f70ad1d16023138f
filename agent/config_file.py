"""Settings files: one TOML key per setting, checked completely when the file is read.

A settings file (`--config FILE`, `HEARTLINE_CONFIG`) holds settings by the names of
`agent.config.Settings`, e.g. ``port = 8765``. It ranks below flags and environment
variables, so one file can serve every role and a flag still wins for one run.

Every value is checked here, with TOML's own types (``port = "8765"`` is a string, not a
port), so a mistake names the file, the line and the key instead of surfacing later as
a setting of unknown origin. Paths (the settings typed `Path`) are relative to the
file's folder, so a deployment folder can be moved as a whole.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from agent.errors import ConfigError

__all__ = ["read_settings_file"]

_STRICT = ConfigDict(strict=True)
_TOML_POSITION = re.compile(r"^(?P<message>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def read_settings_file(path: Path, fields: Mapping[str, FieldInfo]) -> dict[str, object]:
    """The settings the file at `path` sets, each checked against its field in `fields`.

    Raises `ConfigError` naming the file (and the line, where it can) for a file that
    cannot be read, is not TOML, names a key that is no setting, or gives a value of
    the wrong type or out of range.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"{path}: cannot read the settings file ({reason}); check --config or HEARTLINE_CONFIG"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the settings file is not UTF-8 text; save it as UTF-8") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, exc)) from exc
    folder = path.absolute().parent
    return {key: _value(path, text, key, value, fields, folder) for key, value in document.items()}


def _toml_error(path: Path, error: tomllib.TOMLDecodeError) -> str:
    position = _TOML_POSITION.match(str(error))
    if position is None:
        return f"{path}: not valid TOML: {error}"
    return (
        f"{path}:{position['line']}: not valid TOML: {position['message']} "
        f"(column {position['column']})"
    )


def _value(
    path: Path,
    text: str,
    key: str,
    value: object,
    fields: Mapping[str, FieldInfo],
    folder: Path,
) -> object:
    where = f"{path}:{line}" if (line := _line_of(text, key)) else str(path)
    field = fields.get(key)
    if field is None and isinstance(value, dict):
        raise ConfigError(
            f"{where}: [{key}] is a table; settings are top-level keys (port = 8765), "
            "not grouped under [headings]"
        )
    if field is None:
        raise ConfigError(f"{where}: {key!r} is not a Heartline setting{_hint(key, fields)}")
    # A secret's value is never repeated, not even a wrong one.
    got = _toml_type(value) if _is_secret(field) else f"{value!r} ({_toml_type(value)})"
    if _is_path(field):
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f'{where}: {key} must be a path in quotes, e.g. {key} = "file"; got {got}'
            )
        value = _resolve(Path(value), folder)
    try:
        return _adapter(field).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        raise ConfigError(f"{where}: {key}: {reason}; got {got}") from exc


def _resolve(value: Path, folder: Path) -> Path:
    """`~` is the home folder; any other relative path is relative to the file's folder."""
    value = value.expanduser()
    return value if value.is_absolute() else folder / value


def _adapter(field: FieldInfo) -> TypeAdapter[Any]:
    """A strict validator of the field's type and constraints (`ge`, `pattern`, ...)."""
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return TypeAdapter(annotation, config=_STRICT)


def _members(field: FieldInfo) -> tuple[object, ...]:
    """The types a field accepts, `X | None` taken apart."""
    annotation = field.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _is_path(field: FieldInfo) -> bool:
    return Path in _members(field)


def _is_secret(field: FieldInfo) -> bool:
    return SecretStr in _members(field)


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str | Path):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _hint(key: str, fields: Mapping[str, FieldInfo]) -> str:
    """The setting `key` probably meant: its variable or flag spelling, or a close name."""
    spelt = key.lower().removeprefix("heartline_").removeprefix("--").replace("-", "_")
    if spelt in fields:
        return f"; write it as {spelt}"
    close = difflib.get_close_matches(spelt, list(fields), n=1)
    if close:
        return f"; did you mean {close[0]}?"
    return "; the settings are the HEARTLINE_* variables in lower case (docs/operations.md)"


def _line_of(text: str, key: str) -> int | None:
    """The line that sets `key` at the top level (or opens the table `[key]`), if found."""
    quoted = re.escape(key)
    pattern = re.compile(
        rf"^[ \t]*(?:(?:{quoted}|\"{quoted}\"|'{quoted}')[ \t]*=|\[[ \t]*{quoted}[ \t]*\])",
        re.MULTILINE,
    )
    found = pattern.search(text)
    return None if found is None else text.count("\n", 0, found.start()) + 1
