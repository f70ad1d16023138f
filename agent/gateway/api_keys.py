"""API keys of the HTTP APIs: each key acts for one tenant.

Configured as ``TENANT=KEY,TENANT=KEY`` (`HEARTLINE_API_KEYS`). Only digests of
the keys are kept, so a key never sits in memory longer than it takes to parse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from agent.errors import ConfigError
from agent.gateway.auth import check_tenant

__all__ = ["MIN_KEY_CHARS", "ApiKeys"]

MIN_KEY_CHARS: Final = 24


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    """The configured keys; `tenant_of` says whose a presented key is."""

    __slots__ = ("_tenants",)

    def __init__(self, tenants_by_digest: Mapping[bytes, str]) -> None:
        self._tenants = MappingProxyType(dict(tenants_by_digest))

    def __len__(self) -> int:
        return len(self._tenants)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._tenants)} keys>)"

    @classmethod
    def none(cls) -> ApiKeys:
        return cls({})

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        """Keys from ``TENANT=KEY,...``; raises `ConfigError` saying what is wrong."""
        tenants: dict[bytes, str] = {}
        for number, entry in enumerate(spec.split(","), start=1):
            tenant, sep, key = entry.strip().partition("=")
            if not sep:
                raise ConfigError(
                    f"API key entry {number} is not TENANT=KEY; write HEARTLINE_API_KEYS as "
                    "acme=KEY,other=KEY"
                )
            check_tenant(tenant, error=ConfigError)
            if len(key) < MIN_KEY_CHARS or not key.isascii() or not key.isprintable():
                raise ConfigError(
                    f"the API key of entry {number} ({tenant}) must be at least {MIN_KEY_CHARS} "
                    "printable ASCII characters; make one with `openssl rand -hex 24`"
                )
            digest = _digest(key)
            if digest in tenants:
                raise ConfigError(f"API key entry {number} repeats an earlier key")
            tenants[digest] = tenant
        return cls(tenants)

    def tenant_of(self, key: str) -> str | None:
        """The tenant of a configured key, None for any other."""
        return self._tenants.get(_digest(key))
