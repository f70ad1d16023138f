"""Webhook signatures: our `verify`, and the receiver's snippet in docs/handoff.md."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.handoff.signing import sign, verify

SECRET = b"whsec-test"
BODY = b'{"id":"d-1","type":"handoff","transcript":[{"role":"user","text":"\xc3\xa9"}]}'
T = 1_764_950_589
DOCS = Path(__file__).parents[2] / "docs" / "handoff.md"

Verifier = Callable[..., bool]


def _docs_verifier() -> Verifier:
    """The first Python block of docs/handoff.md, run as a receiver would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)
    verifier: Verifier = namespace["verify_heartline_signature"]
    return verifier


DOCS_VERIFY = _docs_verifier()


def test_the_header_is_the_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == f"t={T},v1={expected}"


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512))
def test_a_signature_verifies_with_ours_and_the_documented_check(
    secret: bytes, body: bytes
) -> None:
    header = sign(secret, T, body)
    assert verify(secret, header, body, now=T + 10)
    assert DOCS_VERIFY(secret, header, body, now=T + 10)


@given(body=st.binary(min_size=1, max_size=256), flip=st.integers(min_value=0))
def test_a_changed_body_is_refused(body: bytes, flip: int) -> None:
    header = sign(SECRET, T, body)
    index = flip % len(body)
    tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
    assert not verify(SECRET, header, tampered, now=T)
    assert not DOCS_VERIFY(SECRET, header, tampered, now=T)


@pytest.mark.parametrize("verifier", [verify, DOCS_VERIFY], ids=["ours", "docs"])
def test_stale_and_future_timestamps_are_refused(verifier: Verifier) -> None:
    header = sign(SECRET, T, BODY)
    assert verifier(SECRET, header, BODY, now=T + 300)
    assert not verifier(SECRET, header, BODY, now=T + 301)
    assert not verifier(SECRET, header, BODY, now=T - 301)
    assert verifier(SECRET, header, BODY, now=T + 3_000, tolerance_s=3_600)


@pytest.mark.parametrize("verifier", [verify, DOCS_VERIFY], ids=["ours", "docs"])
def test_wrong_secret_and_replaced_timestamp_are_refused(verifier: Verifier) -> None:
    header = sign(SECRET, T, BODY)
    assert not verifier(b"another secret", header, BODY, now=T)
    mac = header.split("v1=")[1]
    assert not verifier(SECRET, f"t={T + 60},v1={mac}", BODY, now=T + 60)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "v1=abc",
        f"t={T}",
        f"t=abc,v1={'0' * 64}",
        f"t=²,v1={'0' * 64}",
        f"t={T},v1=é",
        "garbage",
    ],
)
@pytest.mark.parametrize("verifier", [verify, DOCS_VERIFY], ids=["ours", "docs"])
def test_malformed_headers_are_refused_not_raised(verifier: Verifier, header: str) -> None:
    assert not verifier(SECRET, header, BODY, now=T)


def test_any_of_several_signatures_may_match() -> None:
    ours = sign(SECRET, T, BODY).split(",")[1]
    header = f"t={T}, v1={'0' * 64}, {ours}"
    assert verify(SECRET, header, BODY, now=T)
    assert DOCS_VERIFY(SECRET, header, BODY, now=T)
