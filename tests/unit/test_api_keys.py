"""API keys: parsing their setting and telling whose a key is."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError
from agent.gateway.api_keys import ApiKeys

KEY_A = "a" * 24
KEY_B = "b-" * 16


def test_each_key_names_its_tenant() -> None:
    keys = ApiKeys.parse(f"acme={KEY_A}, beta.eu={KEY_B}")
    assert (keys.tenant_of(KEY_A), keys.tenant_of(KEY_B)) == ("acme", "beta.eu")
    assert keys.tenant_of("a" * 25) is None
    assert len(keys) == 2
    assert KEY_A not in repr(keys)


def test_no_keys_accept_nothing() -> None:
    assert ApiKeys.none().tenant_of(KEY_A) is None


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (KEY_A, "TENANT=KEY"),
        (f"acme={'x' * 23}", "at least 24"),
        (f"ac me={KEY_A}", "tenant"),
        (f"acme={KEY_A},beta={KEY_A}", "repeats"),
        (f"acme={'ü' * 24}", "ASCII"),
    ],
)
def test_a_bad_setting_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        ApiKeys.parse(spec)
