"""What happens to message text on its way into the database and back out.

Going in, text is redacted (`agent.privacy.redaction`: personal data becomes a
typed placeholder, so no copy of it is ever stored) and then, when a keyring is
configured, encrypted (`memory.crypto`), bound to its tenant, user and column
so that a value moved to another row does not decrypt. Coming out, it is
decrypted; an encrypted value with no keyring to open it is an error, never
ciphertext handed on as someone's message.
"""

from __future__ import annotations

from agent.errors import StoreError
from agent.privacy.redaction import redact
from memory.crypto import TextCipher, is_encrypted

__all__ = ["MessageSealer", "TenantSealers"]


class MessageSealer:
    """Redacts and (optionally) encrypts message text for one tenant."""

    def __init__(self, *, tenant: str, cipher: TextCipher | None = None) -> None:
        self._tenant = tenant
        self._cipher = cipher

    @property
    def cipher(self) -> TextCipher | None:
        return self._cipher

    def seal(self, text: str, *, user: str, column: str) -> str:
        """The stored form of `text`: redacted, then encrypted if a keyring is set."""
        redacted = redact(text)
        if self._cipher is None:
            return redacted
        return self._cipher.encrypt(redacted, associated=self.associated(user, column))

    def open(self, value: str, *, user: str, column: str) -> str:
        """The redacted text back from its stored form. Raises `StoreError` if it cannot."""
        if self._cipher is None:
            if is_encrypted(value):
                raise StoreError(
                    f"a stored {column} is encrypted but no key is configured; "
                    "set HEARTLINE_ENCRYPTION_KEYS to the keyring it was written with"
                )
            return value
        return self._cipher.decrypt(value, associated=self.associated(user, column))

    def reseal(self, value: str, *, user: str, column: str) -> str:
        """`value` sealed under the active key: re-encrypted, or (plain text stored
        before encryption was on) redacted and encrypted. Unchanged without a keyring."""
        if self._cipher is None:
            return value
        if not is_encrypted(value):
            return self.seal(value, user=user, column=column)
        return self._cipher.reencrypt(value, associated=self.associated(user, column))

    def associated(self, user: str, column: str) -> str:
        """What a stored value is bound to: stable ids, never row numbers."""
        return f"{self._tenant}/{user}/{column}"


class TenantSealers:
    """One `MessageSealer` per tenant, all with the same keyring, made on first use.

    A store that serves several tenants seals each record's text with its own
    tenant's sealer, so ciphertext stays bound to the tenant that wrote it.
    Tenants are a configured few, so the cache is not bounded.
    """

    def __init__(self, cipher: TextCipher | None = None) -> None:
        self._cipher = cipher
        self._sealers: dict[str, MessageSealer] = {}

    def for_tenant(self, tenant: str) -> MessageSealer:
        sealer = self._sealers.get(tenant)
        if sealer is None:
            sealer = self._sealers[tenant] = MessageSealer(tenant=tenant, cipher=self._cipher)
        return sealer
