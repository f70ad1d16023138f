"""Encryption at rest for message text (the user's text and the reply).

AES-256-GCM with a keyring: several keys, each with a short id; the first is the
active key and encrypts, every key decrypts, so keys rotate without downtime:
put the new key first, keep the old one after it until `heartline db rotate-key`
has re-encrypted the old rows, then drop it.

Stored form, plain ASCII so it fits the existing text columns::

    enc:v1:<kid>:<base64url, no padding, of nonce(12) || ciphertext || tag(16)>

The nonce is random per message (so the same text encrypts differently each
time; with random nonces a key should seal well under 2**32 messages, another
reason to rotate). The authenticated data is the header `enc:v1:<kid>:` followed
by the caller's `associated` string. Binding the key id means a ciphertext cannot
be relabelled with another key id; `associated` lets the store bind a value to
its row's owner and column (e.g. `"default/user-42/turns.text"`, built from
stable ids such as the tenant and external user id, never surrogate keys that a
dump and restore may change), so a value copied into another user's row or
column does not decrypt. The same `associated` must be given to decrypt.

Values without the `enc:v<n>:` marker are plain text and pass through `decrypt`
unchanged, so encryption can be turned on for an existing database. A legacy
plain-text message that itself begins with `enc:v1:` is taken for ciphertext and
fails to decrypt; that is the price of failing loudly on damaged ciphertext
rather than handing it on as someone's message.

Nothing happens at import time; the keyring comes from one configuration string
(`TextCipher.from_spec`), read at the CLI edge and passed down.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.errors import ConfigError, StoreError

__all__ = ["KEY_BYTES", "TextCipher", "is_encrypted", "key_id_of", "new_key"]

KEY_BYTES = 32
"""AES-256: every key in a keyring is 32 random bytes."""

_VERSION = "v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_MARKER = re.compile(r"enc:v[0-9]+:")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64_ANY = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_DEFAULT_SETTING = "HEARTLINE_ENCRYPTION_KEYS"


def new_key() -> str:
    """A fresh random key, base64url without padding, for a keyring entry `ID:KEY`."""
    return _b64url(os.urandom(KEY_BYTES))


def is_encrypted(value: str) -> bool:
    """Whether `value` carries the encrypted-text marker (`enc:v<n>:`), well formed or not."""
    return _MARKER.match(value) is not None


def key_id_of(value: str) -> str | None:
    """The id of the key `value` was encrypted under; None for plain text.

    Raises `StoreError` when `value` carries the marker but is malformed.
    """
    sealed = _parse(value)
    return None if sealed is None else sealed.kid


@dataclass(frozen=True, slots=True)
class _Sealed:
    kid: str
    nonce: bytes
    body: bytes  # ciphertext || tag


class TextCipher:
    """Encrypts and decrypts message text with a keyring; the first key is active.

    Immutable after construction. Holds no raw key bytes, only AESGCM objects,
    and its repr names the key ids only.
    """

    __slots__ = ("_active", "_aeads")

    _active: str
    _aeads: MappingProxyType[str, AESGCM]

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        """`keys` are (key id, 32-byte key) pairs; the first encrypts, all decrypt."""
        if not keys:
            raise ConfigError("a keyring needs at least one key; generate one with new_key()")
        aeads: dict[str, AESGCM] = {}
        for kid, key in keys:
            _check_kid(kid, where="a key id")
            if kid in aeads:
                raise ConfigError(
                    f"key id {kid!r} appears twice in the keyring; ids must be unique"
                )
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    f"key {kid!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES} random bytes"
                )
            aeads[kid] = AESGCM(key)
        object.__setattr__(self, "_active", keys[0][0])
        object.__setattr__(self, "_aeads", MappingProxyType(aeads))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @classmethod
    def from_spec(cls, spec: str, *, setting: str = _DEFAULT_SETTING) -> TextCipher:
        """Parse `"k2:KEY,k1:KEY"`: comma-separated `ID:KEY` entries, the first active.

        KEY is 32 bytes in base64, standard or urlsafe, padded or not; ID is 1-16
        of `A-Z a-z 0-9 _ -`. `setting` names the source in error messages, which
        never repeat key material.
        """
        if not spec.strip():
            raise ConfigError(f"{setting} is empty; set it to ID:KEY, e.g. k1:<key from new_key()>")
        keys: dict[str, bytes] = {}
        for number, entry in enumerate(spec.split(","), start=1):
            kid, key = _parse_entry(entry.strip(), where=f"{setting} entry {number}")
            if kid in keys:
                raise ConfigError(
                    f"{setting} entry {number} reuses key id {kid!r}; give each key its own id"
                )
            keys[kid] = key
        return cls(list(keys.items()))

    def __repr__(self) -> str:
        return f"TextCipher(active={self._active!r}, key_ids={self.key_ids!r})"

    @property
    def active_key_id(self) -> str:
        """The id of the key that encrypts."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id in the keyring, the active one first."""
        return tuple(self._aeads)

    def encrypt(self, text: str, *, associated: str = "") -> str:
        """`text` sealed under the active key, bound to `associated`, in the stored form."""
        header = f"enc:{_VERSION}:{self._active}:"
        nonce = os.urandom(_NONCE_BYTES)
        body = self._aeads[self._active].encrypt(
            nonce, text.encode("utf-8", "surrogatepass"), _aad(header, associated)
        )
        return header + _b64url(nonce + body)

    def decrypt(self, value: str, *, associated: str = "") -> str:
        """The text in `value`; plain text (no marker) comes back unchanged.

        Raises `StoreError` naming the key id when `value` is malformed, was
        encrypted under a key not in the keyring, was tampered with, or was
        bound to different `associated` data.
        """
        sealed = _parse(value)
        if sealed is None:
            return value
        aead = self._aeads.get(sealed.kid)
        if aead is None:
            raise StoreError(
                f"text is encrypted under key {sealed.kid!r}, which is not in the keyring "
                f"{self.key_ids!r}; add that key back after the active one to read it"
            )
        header = f"enc:{_VERSION}:{sealed.kid}:"
        try:
            data = aead.decrypt(sealed.nonce, sealed.body, _aad(header, associated))
        except InvalidTag as exc:
            raise StoreError(
                f"text encrypted under key {sealed.kid!r} fails authentication: it was "
                "altered, sealed with another key of that id, or bound to other associated data"
            ) from exc
        return data.decode("utf-8", "surrogatepass")

    def needs_rotation(self, value: str) -> bool:
        """Whether `value` is plain text or encrypted under a key other than the active one."""
        return key_id_of(value) != self._active

    def reencrypt(self, value: str, *, associated: str = "") -> str:
        """`value` under the active key: plain text is encrypted, older keys re-sealed.

        A value already under the active key is checked and returned unchanged,
        so rotating twice rewrites nothing.
        """
        text = self.decrypt(value, associated=associated)
        if not self.needs_rotation(value):
            return value
        return self.encrypt(text, associated=associated)


def _aad(header: str, associated: str) -> bytes:
    # The header ends at the ':' after the key id, which cannot contain ':', so
    # (key id, associated) pairs map to distinct byte strings.
    return (header + associated).encode("utf-8", "surrogatepass")


def _parse(value: str) -> _Sealed | None:
    if not is_encrypted(value):
        return None
    _, version, rest = value.split(":", 2)
    if version != _VERSION:
        raise StoreError(
            f"text is encrypted in format {version!r}, which this Heartline cannot read; upgrade"
        )
    kid, sep, payload = rest.partition(":")
    if not sep or _KID.fullmatch(kid) is None:
        raise StoreError("encrypted text has a malformed header (no valid key id)")
    raw = _b64url_decode(payload)
    if raw is None or len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise StoreError(f"text encrypted under key {kid!r} is truncated or not valid base64url")
    return _Sealed(kid=kid, nonce=raw[:_NONCE_BYTES], body=raw[_NONCE_BYTES:])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """Strict: unpadded base64url in its one canonical spelling, else None."""
    if _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Unused low bits in the last character would let two spellings decode to
    # the same bytes; only the canonical one is accepted.
    return raw if _b64url(raw) == text else None


def _check_kid(kid: str, *, where: str) -> None:
    if _KID.fullmatch(kid) is None:
        raise ConfigError(f"{where} is invalid; use 1-16 characters from A-Z a-z 0-9 _ -")


def _parse_entry(entry: str, *, where: str) -> tuple[str, bytes]:
    # Messages name the entry by number and echo nothing from it: a mistyped
    # entry may put key material where the id belongs.
    if not entry:
        raise ConfigError(f"{where} is empty; remove the stray comma")
    kid, sep, encoded = entry.partition(":")
    if not sep:
        raise ConfigError(f"{where} has no key id; write it as ID:KEY, e.g. k1:<key>")
    kid = kid.strip()
    _check_kid(kid, where=f"{where} key id")
    encoded = encoded.strip()
    unpadded = encoded.rstrip("=").replace("+", "-").replace("/", "_")
    if _B64_ANY.fullmatch(encoded) is None or len(unpadded) % 4 == 1:
        raise ConfigError(f"{where} key is not base64; generate a key with new_key()")
    try:
        key = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError) as exc:  # the checks above should leave none
        raise ConfigError(f"{where} key is not base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{where} key decodes to {len(key)} bytes; AES-256 needs {KEY_BYTES} random bytes: "
            "generate a key with new_key()"
        )
    return kid, key
