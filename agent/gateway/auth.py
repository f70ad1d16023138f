"""Bearer tokens for the gateway: HS256 JWTs whose `sub` claim is the user id.

The user id a session acts for comes only from a verified token, never from a
client payload. A token may also name the user's tenant (`tenant`, else the
server's default tenant) and a role: `user` (the default) talks to the agent,
`operator` is staff, for the operator console and its API.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

import jwt

from agent.errors import AuthError, ConfigError

if TYPE_CHECKING:
    from agent.config import Settings

__all__ = [
    "DEFAULT_TTL_S",
    "MIN_SECRET_BYTES",
    "SECRET_FILE",
    "Principal",
    "Role",
    "TokenAuthority",
    "authority_for",
    "check_tenant",
    "load_or_create_secret",
]

ALGORITHM: Final = "HS256"
MIN_SECRET_BYTES: Final = 32
SECRET_FILE: Final = "secret.key"
DEFAULT_TTL_S: Final = 3600.0
MAX_TOKEN_CHARS: Final = 4096
MAX_USER_ID_CHARS: Final = 128
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Role(StrEnum):
    USER = "user"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified credential speaks for; `tenant` None means the server's default."""

    user_id: str
    tenant: str | None = None
    role: Role = Role.USER


class TokenAuthority:
    """Issues and verifies the gateway's tokens with one shared secret.

    `leeway_s` tolerates that much clock skew on `exp` between the issuer
    and this process.
    """

    __slots__ = ("_leeway_s", "_secret")

    def __init__(self, secret: bytes, *, leeway_s: float = 0.0) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the token secret has {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
                "random bytes: set HEARTLINE_SECRET to e.g. `openssl rand -hex 32`, or leave it "
                "unset to use the data directory's secret.key"
            )
        if leeway_s < 0:
            raise ConfigError(f"leeway_s must be >= 0, got {leeway_s!r}")
        self._secret = secret
        self._leeway_s = leeway_s

    def __repr__(self) -> str:
        return "TokenAuthority(<secret>)"

    def issue(
        self,
        user_id: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        now: float | None = None,
        tenant: str | None = None,
        role: Role = Role.USER,
    ) -> str:
        """A token for `user_id` valid for `ttl_s` seconds from `now` (default: the clock)."""
        _check_user_id(user_id, error=ValueError)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        if tenant is not None:
            check_tenant(tenant, error=ValueError)
        issued = time.time() if now is None else now
        claims: dict[str, object] = {"sub": user_id, "iat": int(issued), "exp": int(issued + ttl_s)}
        if tenant is not None:
            claims["tenant"] = tenant
        if role is not Role.USER:
            claims["role"] = role.value
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Whom a valid token names; raises `AuthError` saying why it is not valid."""
        if not token:
            raise AuthError("token is empty")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError(f"token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("token signature is not valid") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthError(f"token is not signed with {ALGORITHM}") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.DecodeError as exc:
            raise AuthError("token is malformed") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError("token is not valid") from exc
        user_id = claims.get("sub")
        _check_user_id(user_id, error=AuthError)
        assert isinstance(user_id, str)
        tenant = claims.get("tenant")
        if tenant is not None:
            check_tenant(tenant, error=AuthError)
        try:
            role = Role(claims.get("role", Role.USER.value))
        except ValueError:
            raise AuthError("token has an unknown role") from None
        return Principal(user_id, tenant, role)


def check_tenant(tenant: object, *, error: type[Exception]) -> None:
    """Refuse a tenant name that is not 1-64 characters of A-Z a-z 0-9 _ . -."""
    if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
        raise error("a tenant is 1-64 characters of A-Z a-z 0-9 _ . -")


def _check_user_id(user_id: object, *, error: type[Exception]) -> None:
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID_CHARS:
        raise error(f"the user id must be a string of 1-{MAX_USER_ID_CHARS} characters")
    if not user_id.isprintable():
        raise error("the user id must not contain control characters")


def authority_for(settings: Settings) -> tuple[TokenAuthority, bool]:
    """The token authority: the configured secret, else the data directory's (created if new)."""
    if settings.secret is not None:
        return TokenAuthority(settings.secret.get_secret_value().encode()), False
    secret, created = load_or_create_secret(settings.data_dir)
    return TokenAuthority(secret), created


def load_or_create_secret(data_dir: Path) -> tuple[bytes, bool]:
    """The secret in `data_dir/secret.key`, creating it (64 random bytes, mode 0600) if missing.

    Returns the secret and whether this call created it. Creation is atomic:
    a concurrent caller reads either nothing or the whole secret.
    """
    path = data_dir / SECRET_FILE
    if path.exists():
        return _read_secret(path), False
    secret = secrets.token_bytes(64)
    staging = data_dir / f".{SECRET_FILE}.{secrets.token_hex(8)}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secret)
            file.flush()
            os.fsync(file.fileno())
        os.link(staging, path)
    except FileExistsError:
        return _read_secret(path), False
    except OSError as exc:
        raise ConfigError(
            f"cannot create the token secret {path}: {exc.strerror}; "
            "make the data directory writable or create the file yourself"
        ) from exc
    finally:
        staging.unlink(missing_ok=True)
    return secret, True


def _read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the token secret {path}: {exc.strerror}") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the token secret {path} has {len(secret)} bytes, fewer than "
            f"{MIN_SECRET_BYTES}; delete it to have a new one made (this logs every user out)"
        )
    return secret
