"""The hub protocol's frames, sans I/O: bytes in, messages out, and back.

A frame is a 4-byte big-endian body length, then the body: one byte naming the
message, then its fields. A string is a 2-byte length and UTF-8; a process (a
link) is named by the 4-byte id the hub gave it; an event's payload, the codec's
JSON, runs to the end of the body. A group of "" on the wire is no group.

Links send `Hello` first, then `Subscribe`, `Unsubscribe` and `Publish`. The hub
answers `Hello` with `Welcome`, one `PeerSubscribed` per interest the other
links hold, and `Ready`; after that it sends what changes (`PeerSubscribed`,
`PeerUnsubscribed`, `PeerGone`) and the events routed to the link (`Deliver`).

Everything read is checked here: `FrameReader.feed` raises `EventDecodeError` for a
length it refuses (the stream cannot be trusted after that: drop the
connection), `parse_from_link` and `parse_from_hub` raise it for a body that is
not a well-formed message of their direction (drop the frame).
"""

from __future__ import annotations

import enum
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, assert_never

from agent.errors import ConfigError, EventDecodeError

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "MAX_SOCKET_PATH_BYTES",
    "PROTOCOL_VERSION",
    "Deliver",
    "Destination",
    "FrameReader",
    "Hello",
    "HubMessage",
    "Interest",
    "LinkMessage",
    "PeerGone",
    "PeerSubscribed",
    "PeerUnsubscribed",
    "Publish",
    "Ready",
    "Subscribe",
    "Unsubscribe",
    "Welcome",
    "check_socket_path",
    "encode_deliver",
    "encode_frame",
    "encode_publish",
    "parse_from_hub",
    "parse_from_link",
]

PROTOCOL_VERSION: Final = 1

# The largest event is an emotion request of 256 texts of 16,000 characters, under
# 25 MiB of JSON even when every character is escaped; anything longer is refused.
DEFAULT_MAX_FRAME_BYTES: Final = 32 * 1024 * 1024

# sun_path holds 108 bytes on Linux (104 on macOS and the BSDs), the final NUL included.
MAX_SOCKET_PATH_BYTES: Final = 103 if sys.platform == "darwin" or "bsd" in sys.platform else 107

_LENGTH = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_MAX_STRING: Final = 0xFFFF
_MAX_GROUPS: Final = 0xFF
_MAX_DESTINATIONS: Final = 0xFFFF


class _Kind(enum.IntEnum):
    HELLO = 1
    SUBSCRIBE = 2
    UNSUBSCRIBE = 3
    PUBLISH = 4
    WELCOME = 16
    PEER_SUBSCRIBED = 17
    PEER_UNSUBSCRIBED = 18
    PEER_GONE = 19
    READY = 20
    DELIVER = 21


@dataclass(frozen=True, slots=True)
class Interest:
    """One (filter, group) a process subscribes to; `group` None for every event."""

    topic_filter: str
    group: str | None = None

    @property
    def wildcard(self) -> bool:
        return "+" in self.topic_filter or "#" in self.topic_filter


@dataclass(frozen=True, slots=True)
class Destination:
    """A process an event goes to, and the groups it is to serve there."""

    peer: int
    groups: tuple[str, ...] = ()


# Link to hub


@dataclass(frozen=True, slots=True)
class Hello:
    name: str
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Subscribe:
    interest: Interest


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    interest: Interest


@dataclass(frozen=True, slots=True)
class Publish:
    destinations: tuple[Destination, ...]
    topic: str
    payload: bytes


LinkMessage = Hello | Subscribe | Unsubscribe | Publish


# Hub to link


@dataclass(frozen=True, slots=True)
class Welcome:
    peer: int
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class PeerSubscribed:
    peer: int
    interest: Interest


@dataclass(frozen=True, slots=True)
class PeerUnsubscribed:
    peer: int
    interest: Interest


@dataclass(frozen=True, slots=True)
class PeerGone:
    peer: int


@dataclass(frozen=True, slots=True)
class Ready:
    """The snapshot of the other links' interests is complete."""


@dataclass(frozen=True, slots=True)
class Deliver:
    groups: tuple[str, ...]
    topic: str
    payload: bytes


HubMessage = Welcome | PeerSubscribed | PeerUnsubscribed | PeerGone | Ready | Deliver


def check_socket_path(path: Path) -> None:
    """Refuse a socket path the OS cannot bind (`ConfigError` says what to do)."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"the bus hub's socket path is {size} bytes long and a Unix socket's path may "
            f"be {MAX_SOCKET_PATH_BYTES} at most; choose a shorter one, e.g. in a fresh "
            "temporary directory (tempfile.mkdtemp())"
        )


# Encoding


def encode_frame(message: LinkMessage | HubMessage) -> bytes:
    """One whole frame, length prefix included. Raises `ValueError` for a string too long."""
    if isinstance(message, Publish):
        return encode_publish(message.destinations, message.topic, message.payload)
    if isinstance(message, Deliver):
        return encode_deliver(message.groups, message.topic, message.payload)
    match message:
        case Hello(name=name, version=version):
            body = [bytes((_Kind.HELLO, version)), _string(name)]
        case Subscribe(interest=interest):
            body = [bytes((_Kind.SUBSCRIBE,)), *_interest(interest)]
        case Unsubscribe(interest=interest):
            body = [bytes((_Kind.UNSUBSCRIBE,)), *_interest(interest)]
        case Welcome(peer=peer, version=version):
            body = [bytes((_Kind.WELCOME, version)), _U32.pack(peer)]
        case PeerSubscribed(peer=peer, interest=interest):
            body = [bytes((_Kind.PEER_SUBSCRIBED,)), _U32.pack(peer), *_interest(interest)]
        case PeerUnsubscribed(peer=peer, interest=interest):
            body = [bytes((_Kind.PEER_UNSUBSCRIBED,)), _U32.pack(peer), *_interest(interest)]
        case PeerGone(peer=peer):
            body = [bytes((_Kind.PEER_GONE,)), _U32.pack(peer)]
        case Ready():
            body = [bytes((_Kind.READY,))]
        case _:
            assert_never(message)
    return _frame(body)


def encode_publish(destinations: tuple[Destination, ...], topic: str, payload: bytes) -> bytes:
    """A `Publish` frame, built without the message object (the hot path)."""
    if not destinations or len(destinations) > _MAX_DESTINATIONS:
        raise ValueError(f"a publish names 1 to {_MAX_DESTINATIONS} destinations")
    body = [bytes((_Kind.PUBLISH,)), _U16.pack(len(destinations))]
    for destination in destinations:
        body.append(_U32.pack(destination.peer))
        body.extend(_groups(destination.groups))
    body.append(_string(topic))
    body.append(payload)
    return _frame(body)


def encode_deliver(groups: tuple[str, ...], topic: str, payload: bytes) -> bytes:
    """A `Deliver` frame, built without the message object (the hot path)."""
    return _frame([bytes((_Kind.DELIVER,)), *_groups(groups), _string(topic), payload])


def _frame(body: list[bytes]) -> bytes:
    data = b"".join(body)
    return _LENGTH.pack(len(data)) + data


def _string(text: str) -> bytes:
    data = text.encode()
    if len(data) > _MAX_STRING:
        raise ValueError(f"a string on the hub protocol is {_MAX_STRING} bytes at most")
    return _U16.pack(len(data)) + data


def _interest(interest: Interest) -> tuple[bytes, bytes]:
    return _string(interest.topic_filter), _string(interest.group or "")


def _groups(groups: tuple[str, ...]) -> list[bytes]:
    if len(groups) > _MAX_GROUPS:
        raise ValueError(f"an event serves {_MAX_GROUPS} groups of one process at most")
    return [bytes((len(groups),)), *(_string(group) for group in groups)]


# Decoding


class FrameReader:
    """Splits a byte stream into frame bodies."""

    __slots__ = ("_buffer", "_max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        """Every body completed by `data`, in order.

        Raises `EventDecodeError` for an empty or too long frame; the stream is
        unusable after that.
        """
        buffer = self._buffer
        buffer += data
        bodies: list[bytes] = []
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, start)
            if size == 0 or size > self._max_frame_bytes:
                buffer.clear()
                raise EventDecodeError(
                    f"a frame of {size} bytes; frames hold 1 to {self._max_frame_bytes}"
                )
            end = start + _LENGTH.size + size
            if end > len(buffer):
                break
            bodies.append(bytes(buffer[start + _LENGTH.size : end]))
            start = end
        if start:
            del buffer[:start]
        return bodies


# Each reader takes the body and an offset, returns the value and the offset past it.


def _u8(body: bytes, at: int) -> tuple[int, int]:
    if at >= len(body):
        raise EventDecodeError("a frame ends early")
    return body[at], at + 1


def _u32(body: bytes, at: int) -> tuple[int, int]:
    if at + 4 > len(body):
        raise EventDecodeError("a frame ends early")
    return int(_U32.unpack_from(body, at)[0]), at + 4


def _str(body: bytes, at: int) -> tuple[str, int]:
    if at + 2 > len(body):
        raise EventDecodeError("a frame ends early")
    end = at + 2 + int(_U16.unpack_from(body, at)[0])
    if end > len(body):
        raise EventDecodeError("a frame ends early")
    try:
        return body[at + 2 : end].decode(), end
    except UnicodeDecodeError as exc:
        raise EventDecodeError("a string that is not UTF-8") from exc


def _interest_at(body: bytes, at: int) -> tuple[Interest, int]:
    topic_filter, at = _str(body, at)
    group, at = _str(body, at)
    if not topic_filter:
        raise EventDecodeError("an empty topic filter")
    return Interest(topic_filter, group or None), at


def _groups_at(body: bytes, at: int) -> tuple[tuple[str, ...], int]:
    count, at = _u8(body, at)
    if not count:
        return (), at
    groups = []
    for _ in range(count):
        group, at = _str(body, at)
        if not group:
            raise EventDecodeError("an empty group name")
        groups.append(group)
    return tuple(groups), at


def _event_at(body: bytes, at: int) -> tuple[str, bytes]:
    """The topic and the payload, which runs to the end of the body."""
    topic, at = _str(body, at)
    if not topic or "+" in topic or "#" in topic:
        raise EventDecodeError("a topic is non-empty, without + or #")
    if at >= len(body):
        raise EventDecodeError("an event without a payload")
    return topic, body[at:]


def _end(body: bytes, at: int) -> None:
    if at != len(body):
        raise EventDecodeError(f"{len(body) - at} bytes past the end of a message")


def parse_from_link(body: bytes) -> LinkMessage:
    """The message a link sent; `EventDecodeError` for anything else."""
    kind = body[0] if body else None
    if kind == _Kind.PUBLISH:
        if len(body) < 3:
            raise EventDecodeError("a frame ends early")
        count, at = int(_U16.unpack_from(body, 1)[0]), 3
        if not count:
            raise EventDecodeError("a publish to no one")
        destinations = []
        for _ in range(count):
            peer, at = _u32(body, at)
            groups, at = _groups_at(body, at)
            destinations.append(Destination(peer, groups))
        topic, payload = _event_at(body, at)
        return Publish(tuple(destinations), topic, payload)
    message: LinkMessage
    match kind:
        case _Kind.HELLO:
            version, at = _u8(body, 1)
            name, at = _str(body, at)
            message = Hello(name, version)
        case _Kind.SUBSCRIBE:
            interest, at = _interest_at(body, 1)
            message = Subscribe(interest)
        case _Kind.UNSUBSCRIBE:
            interest, at = _interest_at(body, 1)
            message = Unsubscribe(interest)
        case _:
            raise EventDecodeError(f"no link message is of kind {kind}")
    _end(body, at)
    return message


def parse_from_hub(body: bytes) -> HubMessage:
    """The message the hub sent; `EventDecodeError` for anything else."""
    kind = body[0] if body else None
    if kind == _Kind.DELIVER:
        groups, at = _groups_at(body, 1)
        topic, payload = _event_at(body, at)
        return Deliver(groups, topic, payload)
    message: HubMessage
    match kind:
        case _Kind.WELCOME:
            version, at = _u8(body, 1)
            peer, at = _u32(body, at)
            message = Welcome(peer, version)
        case _Kind.PEER_SUBSCRIBED | _Kind.PEER_UNSUBSCRIBED:
            peer, at = _u32(body, 1)
            interest, at = _interest_at(body, at)
            changed = PeerSubscribed if kind == _Kind.PEER_SUBSCRIBED else PeerUnsubscribed
            message = changed(peer, interest)
        case _Kind.PEER_GONE:
            peer, at = _u32(body, 1)
            message = PeerGone(peer)
        case _Kind.READY:
            message, at = Ready(), 1
        case _:
            raise EventDecodeError(f"no hub message is of kind {kind}")
    _end(body, at)
    return message
