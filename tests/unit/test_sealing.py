"""`TenantSealers`: one sealer per tenant, each binding text to its own tenant."""

from __future__ import annotations

import pytest

from agent.errors import StoreError
from memory.crypto import TextCipher, new_key
from memory.sealing import TenantSealers


def test_a_tenant_keeps_its_sealer() -> None:
    sealers = TenantSealers()
    assert sealers.for_tenant("acme") is sealers.for_tenant("acme")
    assert sealers.for_tenant("acme") is not sealers.for_tenant("globex")


def test_text_sealed_for_one_tenant_opens_only_for_that_tenant() -> None:
    sealers = TenantSealers(TextCipher.from_spec(f"k1:{new_key()}"))
    stored = sealers.for_tenant("acme").seal("my order is late", user="u", column="turns.text")
    opened = sealers.for_tenant("acme").open(stored, user="u", column="turns.text")
    assert opened == "my order is late"
    with pytest.raises(StoreError, match="associated data"):
        sealers.for_tenant("globex").open(stored, user="u", column="turns.text")


def test_without_a_keyring_every_tenant_stores_redacted_text() -> None:
    sealers = TenantSealers()
    for tenant in ("acme", "globex"):
        stored = sealers.for_tenant(tenant).seal("mail a@example.com", user="u", column="c")
        assert stored == "mail [EMAIL]"
