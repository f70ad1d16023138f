import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError, StoreError
from memory.crypto import KEY_BYTES, TextCipher, is_encrypted, key_id_of, new_key

# Fixed keys so failures reproduce; distinct bytes so a mix-up shows.
K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K1_B64 = base64.b64encode(K1).decode()  # standard alphabet, padded
K2_B64 = base64.urlsafe_b64encode(K2).decode().rstrip("=")  # urlsafe, unpadded

STORED = re.compile(r"enc:v1:([A-Za-z0-9_-]{1,16}):([A-Za-z0-9_-]+)")


def cipher(spec: str) -> TextCipher:
    return TextCipher.from_spec(spec.replace("K1", K1_B64).replace("K2", K2_B64))


def payload(value: str) -> bytes:
    match = STORED.fullmatch(value)
    assert match is not None
    text = match.group(2)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def with_payload(value: str, raw: bytes) -> str:
    head = value.rsplit(":", 1)[0]
    return f"{head}:{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


# Round trips


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "我今天很难过，想找人聊聊。",
        "thanks 🙏🏽❤️‍🔥 see you 👋",
        "a\x00b\nc",
        "x" * 10_000,
    ],
)
def test_round_trip(text: str) -> None:
    c = cipher("k1:K1")
    stored = c.encrypt(text, associated="t/u1/turns.text")
    assert stored.isascii()
    assert STORED.fullmatch(stored) is not None
    assert is_encrypted(stored)
    assert key_id_of(stored) == "k1"
    assert c.decrypt(stored, associated="t/u1/turns.text") == text
    # The payload is nonce (12) + ciphertext (len of the UTF-8) + tag (16).
    assert len(payload(stored)) == 12 + len(text.encode()) + 16


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.characters(exclude_categories=())),
    associated=st.text(max_size=40),
)
def test_round_trip_property(text: str, associated: str) -> None:
    # Any str, lone surrogates included, comes back exactly.
    c = cipher("k1:K1")
    stored = c.encrypt(text, associated=associated)
    assert STORED.fullmatch(stored) is not None
    assert c.decrypt(stored, associated=associated) == text


def test_the_same_text_encrypts_differently_each_time() -> None:
    c = cipher("k1:K1")
    values = {c.encrypt("same words") for _ in range(50)}
    assert len(values) == 50
    assert len({payload(v)[:12] for v in values}) == 50  # fresh nonce every time
    assert {c.decrypt(v) for v in values} == {"same words"}


def test_plain_text_passes_through_decrypt() -> None:
    c = cipher("k1:K1")
    for text in ["", "hello", "我很好", "encrypted: no", "enc:", "enc:v:x", "ENC:v1:k1:AAAA"]:
        assert not is_encrypted(text)
        assert key_id_of(text) is None
        assert c.decrypt(text) == text
        assert c.decrypt(text, associated="whatever") == text


# Tampering and mismatches


def test_flipping_any_bit_of_the_payload_fails() -> None:
    c = cipher("k1:K1")
    stored = c.encrypt("I feel a bit better now", associated="u1")
    raw = payload(stored)
    for index in range(len(raw)):  # nonce, ciphertext and tag alike
        for bit in (0x01, 0x80):
            damaged = bytearray(raw)
            damaged[index] ^= bit
            with pytest.raises(StoreError, match="'k1'") as info:
                c.decrypt(with_payload(stored, bytes(damaged)), associated="u1")
            assert "better" not in str(info.value)


def test_changing_any_character_of_the_stored_form_never_yields_the_text() -> None:
    c = cipher("k1:K1,k2:K2")
    stored = c.encrypt("secret feelings")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for index, char in enumerate(stored):
        # Every replacement for the last character, whose low bits may be unused.
        choices = alphabet if index == len(stored) - 1 else "A_2:"
        for new in choices:
            if new == char:
                continue
            damaged = stored[:index] + new + stored[index + 1 :]
            try:
                result = c.decrypt(damaged)
            except StoreError:
                continue
            # Only a broken marker turns it into (unchanged) plain text.
            assert not is_encrypted(damaged)
            assert result == damaged


@pytest.mark.parametrize("cut", [1, 2, 5, 16, 27])
def test_truncated_ciphertext_fails(cut: int) -> None:
    c = cipher("k1:K1")
    stored = c.encrypt("hi")
    with pytest.raises(StoreError, match="'k1'"):
        c.decrypt(stored[:-cut])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("enc:v1:k1:", "truncated"),
        ("enc:v1:k1:not base64!", "not valid base64url"),
        ("enc:v1:k1:" + "A" * 37, "truncated"),  # 37 % 4 == 1: impossible length
        ("enc:v1:k1:" + "A" * 36, "truncated"),  # 27 bytes: shorter than nonce + tag
        ("enc:v1:k1:" + "A" * 40, "fails authentication"),  # right shape, garbage
        ("enc:v1:k1:" + "A" * 39 + "=", "not valid base64url"),
        ("enc:v1:bad id:AAAA", "malformed header"),
        ("enc:v1:k1", "malformed header"),
        ("enc:v1::AAAA", "malformed header"),
        ("enc:v2:k1:AAAA", "cannot read"),
    ],
)
def test_garbage_fails_with_a_clear_error(value: str, message: str) -> None:
    c = cipher("k1:K1")
    assert is_encrypted(value)
    with pytest.raises(StoreError, match=message):
        c.decrypt(value)


def test_associated_data_must_match() -> None:
    c = cipher("k1:K1")
    stored = c.encrypt("my private note", associated="default/alice/turns.text")
    for other in ["default/bob/turns.text", "default/alice/turns.reply", "", "default/alice"]:
        with pytest.raises(StoreError, match="associated data"):
            c.decrypt(stored, associated=other)
    assert c.decrypt(stored, associated="default/alice/turns.text") == "my private note"


def test_the_key_id_is_authenticated() -> None:
    # Same key bytes under two ids: relabelling the header still fails.
    c = TextCipher([("a", K1), ("b", K1)])
    stored = c.encrypt("hello")
    relabelled = stored.replace("enc:v1:a:", "enc:v1:b:", 1)
    with pytest.raises(StoreError, match="'b'"):
        c.decrypt(relabelled)


def test_a_wrong_key_under_the_same_id_fails() -> None:
    stored = cipher("k1:K1").encrypt("hello")
    with pytest.raises(StoreError, match=r"'k1'.*fails authentication"):
        cipher("k1:K2").decrypt(stored)


# Rotation


def test_rotation_from_k1_to_k2() -> None:
    old = cipher("k1:K1")
    stored = old.encrypt("今天好累 😮‍💨", associated="u1")
    assert key_id_of(stored) == "k1"
    assert not old.needs_rotation(stored)

    both = cipher("k2:K2,k1:K1")
    assert both.active_key_id == "k2"
    assert both.decrypt(stored, associated="u1") == "今天好累 😮‍💨"
    assert both.needs_rotation(stored)

    rotated = both.reencrypt(stored, associated="u1")
    assert key_id_of(rotated) == "k2"
    assert not both.needs_rotation(rotated)
    assert both.reencrypt(rotated, associated="u1") == rotated  # idempotent

    new = cipher("k2:K2")
    assert new.decrypt(rotated, associated="u1") == "今天好累 😮‍💨"
    with pytest.raises(StoreError, match=r"key 'k1', which is not in the keyring \('k2',\)"):
        new.decrypt(stored, associated="u1")


def test_plain_text_needs_rotation_and_reencrypt_encrypts_it() -> None:
    c = cipher("k2:K2,k1:K1")
    assert c.needs_rotation("legacy row")
    sealed = c.reencrypt("legacy row", associated="u1")
    assert key_id_of(sealed) == "k2"
    assert c.decrypt(sealed, associated="u1") == "legacy row"


def test_reencrypt_checks_the_associated_data() -> None:
    c = cipher("k2:K2,k1:K1")
    stored = cipher("k1:K1").encrypt("hello", associated="u1")
    with pytest.raises(StoreError, match="'k1'"):
        c.reencrypt(stored, associated="u2")
    current = c.encrypt("hello", associated="u1")
    with pytest.raises(StoreError, match="'k2'"):
        c.reencrypt(current, associated="u2")


def test_needs_rotation_rejects_malformed_values() -> None:
    with pytest.raises(StoreError, match="malformed header"):
        cipher("k1:K1").needs_rotation("enc:v1:!!:AAAA")


# Configuration


def test_parsing_accepts_both_alphabets_padding_and_spaces() -> None:
    std = base64.b64encode(K2).decode()
    url = base64.urlsafe_b64encode(K2).decode()
    for encoded in [std, std.rstrip("="), url, url.rstrip("=")]:
        c = TextCipher.from_spec(f" k_2-x : {encoded} , k1:{K1_B64} ")
        assert c.key_ids == ("k_2-x", "k1")
        assert c.active_key_id == "k_2-x"
        # The key decodes to the same bytes whatever the spelling.
        stored = TextCipher([("k_2-x", K2)]).encrypt("same key")
        assert c.decrypt(stored) == "same key"


def test_new_key_makes_a_valid_distinct_key() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first)
    assert len(base64.urlsafe_b64decode(first + "=")) == KEY_BYTES
    c = TextCipher.from_spec(f"k1:{first}")
    assert c.decrypt(c.encrypt("hi")) == "hi"


SECRET = base64.b64encode(b"S" * 32).decode()  # "U1NT..." - must never be echoed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        (f"k1:{SECRET},", "entry 2 is empty"),
        (f"k1:{SECRET},,k2:{SECRET}", "entry 2 is empty"),
        (SECRET, "entry 1 has no key id"),
        (f"k1:{SECRET},k1:{base64.b64encode(K1).decode()}", "entry 2 reuses key id 'k1'"),
        (f"bad id:{SECRET}", "entry 1 key id is invalid"),
        (f":{SECRET}", "entry 1 key id is invalid"),
        (f"{'a' * 17}:{SECRET}", "entry 1 key id is invalid"),
        (f"k.1:{SECRET}", "entry 1 key id is invalid"),
        (f"{SECRET[:16]}:{SECRET[16:]}", "entry 1 key decodes to 20 bytes"),
        (f"k1:{SECRET[:-1]}!", "entry 1 key is not base64"),
        (f"k1:{SECRET} tail", "is not base64"),
        (f"k1:{SECRET[:-3]}", "is not base64"),  # 41 characters: impossible length
        (f"k1:{SECRET[:-8]}", "decodes to 27 bytes; AES-256 needs 32"),
        (f"k1:{base64.b64encode(b'S' * 16).decode()}", "decodes to 16 bytes"),
        (f"k1:{base64.b64encode(b'S' * 48).decode()}", "decodes to 48 bytes"),
        ("k1:", "decodes to 0 bytes|is not base64"),
    ],
)
def test_bad_keyrings_fail_with_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        TextCipher.from_spec(spec)
    text = str(info.value)
    assert "HEARTLINE_ENCRYPTION_KEYS" in text
    # No key material, not even a fragment of it.
    for start in range(0, len(SECRET) - 8):
        assert SECRET[start : start + 8] not in text
    assert "U1NT" not in text


def test_the_setting_name_is_configurable() -> None:
    with pytest.raises(ConfigError, match="MY_KEYS is empty"):
        TextCipher.from_spec("", setting="MY_KEYS")


def test_the_constructor_validates_too() -> None:
    with pytest.raises(ConfigError, match="at least one key"):
        TextCipher([])
    with pytest.raises(ConfigError, match="is 16 bytes"):
        TextCipher([("k1", K1[:16])])
    with pytest.raises(ConfigError, match="invalid"):
        TextCipher([("k:1", K1)])
    with pytest.raises(ConfigError, match="twice"):
        TextCipher([("k1", K1), ("k1", K2)])


def test_repr_names_ids_but_never_keys() -> None:
    c = cipher("k2:K2,k1:K1")
    shown = repr(c) + str(c)
    assert shown.startswith("TextCipher(active='k2', key_ids=('k2', 'k1'))")
    for secret in [K1_B64, K2_B64, K1.hex(), K2.hex(), repr(K1), repr(K2)]:
        assert secret not in shown
    assert not hasattr(c, "__dict__")


def test_the_cipher_is_immutable() -> None:
    c = cipher("k1:K1")
    with pytest.raises(AttributeError):
        c._active = "k2"
    with pytest.raises(AttributeError):
        del c._aeads
