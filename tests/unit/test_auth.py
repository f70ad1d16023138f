"""Token issue and verification, and the secret file."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from agent.errors import AuthError, ConfigError
from agent.gateway.auth import Role, TokenAuthority, load_or_create_secret

SECRET = b"s" * 32
OTHER = b"o" * 32


def test_issue_then_verify_returns_the_user() -> None:
    authority = TokenAuthority(SECRET)
    assert authority.verify(authority.issue("user-1")).user_id == "user-1"
    assert authority.verify(authority.issue("用户@example.com")).user_id == "用户@example.com"


def test_expired_token() -> None:
    authority = TokenAuthority(SECRET)
    token = authority.issue("u", ttl_s=60, now=time.time() - 3600)
    with pytest.raises(AuthError, match="expired"):
        authority.verify(token)


def test_leeway_tolerates_skew() -> None:
    token = TokenAuthority(SECRET).issue("u", ttl_s=60, now=time.time() - 90)
    assert TokenAuthority(SECRET, leeway_s=600).verify(token).user_id == "u"


def test_token_signed_with_another_secret_is_rejected() -> None:
    forged = TokenAuthority(OTHER).issue("admin")
    with pytest.raises(AuthError, match="signature"):
        TokenAuthority(SECRET).verify(forged)


def test_tampered_payload_is_rejected() -> None:
    authority = TokenAuthority(SECRET)
    header, _, signature = authority.issue("alice").split(".")
    other_payload = authority.issue("mallory").split(".")[1]
    with pytest.raises(AuthError):
        authority.verify(f"{header}.{other_payload}x.{signature}")
    with pytest.raises(AuthError):
        authority.verify(f"{header}.{other_payload}.{signature}")


def test_unsigned_and_other_algorithms_are_rejected() -> None:
    claims = {"sub": "admin", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(AuthError):
        TokenAuthority(SECRET).verify(unsigned)
    hs512 = jwt.encode(claims, SECRET * 2, algorithm="HS512")
    with pytest.raises(AuthError, match="HS256"):
        TokenAuthority(SECRET * 2).verify(hs512)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "u"}, "exp"),
        ({"exp": 4102444800}, "sub"),
        ({"sub": "", "exp": 4102444800}, "user id"),
        ({"sub": "x" * 129, "exp": 4102444800}, "user id"),
        ({"sub": "a\nb", "exp": 4102444800}, "control"),
    ],
)
def test_claims_are_required_and_checked(claims: dict[str, object], reason: str) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match=reason):
        TokenAuthority(SECRET).verify(token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 5000])
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(AuthError):
        TokenAuthority(SECRET).verify(token)


def test_short_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        TokenAuthority(b"short")


def test_issue_checks_its_arguments() -> None:
    authority = TokenAuthority(SECRET)
    with pytest.raises(ValueError, match="user id"):
        authority.issue("")
    with pytest.raises(ValueError, match="ttl_s"):
        authority.issue("u", ttl_s=0)


def test_repr_hides_the_secret() -> None:
    assert "sss" not in repr(TokenAuthority(SECRET))


def test_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    secret, created = load_or_create_secret(data_dir)
    assert created
    assert len(secret) >= 32
    path = data_dir / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_secret(data_dir)
    assert (again, created_again) == (secret, False)
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.key"]
    authority = TokenAuthority(again)
    assert authority.verify(TokenAuthority(secret).issue("u")).user_id == "u"


def test_short_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_bytes(b"too short")
    with pytest.raises(ConfigError, match="delete it"):
        load_or_create_secret(tmp_path)


def test_tenant_and_role_travel_in_the_token() -> None:
    authority = TokenAuthority(SECRET)
    plain = authority.verify(authority.issue("u"))
    assert (plain.tenant, plain.role) == (None, Role.USER)
    staff = authority.verify(authority.issue("dana", tenant="acme", role=Role.OPERATOR))
    assert (staff.user_id, staff.tenant, staff.role) == ("dana", "acme", Role.OPERATOR)


@pytest.mark.parametrize(
    "claims",
    [{"tenant": "no/slashes"}, {"tenant": ""}, {"tenant": 7}, {"role": "admin"}],
)
def test_a_bad_tenant_or_role_claim_is_refused(claims: dict[str, object]) -> None:
    token = jwt.encode({"sub": "u", "exp": time.time() + 60, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        TokenAuthority(SECRET).verify(token)


def test_issue_refuses_a_bad_tenant() -> None:
    with pytest.raises(ValueError, match="tenant"):
        TokenAuthority(SECRET).issue("u", tenant="a b")
