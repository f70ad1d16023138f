"""The hub's decisions, sans I/O: who joined, who holds what, where a frame goes.

`HubCore` takes what arrives from each link (`connect`, `receive`,
`disconnect`) and answers with `Send`s: a message and the links to write it to.
It never looks inside an event: the publishing link has already chosen the
destinations, and the hub only passes each its copy, naming the groups it is
to serve there. What it keeps is each link's interests, counted, so that a
link joining late gets the whole table at once and every change reaches the
others once.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.bus.link.routing import Counts
from agent.bus.link.wire import (
    PROTOCOL_VERSION,
    Deliver,
    Hello,
    HubMessage,
    Interest,
    LinkMessage,
    PeerGone,
    PeerSubscribed,
    PeerUnsubscribed,
    Publish,
    Ready,
    Subscribe,
    Unsubscribe,
    Welcome,
)
from agent.errors import BusError

__all__ = ["HubCore", "ProtocolError", "Send"]


class ProtocolError(BusError):
    """A link broke the protocol (another version, a message before `Hello`): drop it.

    Never leaves this package: the hub closes that link's connection and carries on.
    """


@dataclass(frozen=True, slots=True)
class Send:
    """Write `message` to each of `peers` (encoded once for all)."""

    peers: tuple[int, ...]
    message: HubMessage


class HubCore:
    """Links by id, with their names and counted interests."""

    def __init__(self) -> None:
        self._next_peer = 1
        self._waiting: set[int] = set()  # connected, no `Hello` yet
        self._names: dict[int, str] = {}
        self._held: dict[int, Counts[Interest]] = {}

    @property
    def joined(self) -> dict[int, str]:
        """The links past their `Hello`, by id, with the names they gave."""
        return dict(self._names)

    def connect(self) -> int:
        """A new connection: its id. It joins with its `Hello`."""
        peer = self._next_peer
        self._next_peer += 1
        self._waiting.add(peer)
        return peer

    def receive(self, peer: int, message: LinkMessage) -> list[Send]:
        """What `message` from `peer` makes the hub send. Raises `ProtocolError`."""
        if peer in self._waiting:
            if not isinstance(message, Hello):
                raise ProtocolError(f"{type(message).__name__} before Hello")
            return self._join(peer, message)
        if peer not in self._names:
            return []  # gone already
        match message:
            case Publish():
                return self._relay(peer, message)
            case Subscribe(interest=interest):
                if not self._held[peer].add(interest):
                    return []
                return self._to_others(peer, PeerSubscribed(peer, interest))
            case Unsubscribe(interest=interest):
                if not self._held[peer].remove(interest):
                    return []
                return self._to_others(peer, PeerUnsubscribed(peer, interest))
            case Hello():
                raise ProtocolError("a second Hello")

    def disconnect(self, peer: int) -> list[Send]:
        """`peer` is gone: the others forget its interests."""
        self._waiting.discard(peer)
        if self._names.pop(peer, None) is None:
            return []
        held = self._held.pop(peer)
        return self._to_others(peer, PeerGone(peer)) if held else []

    def _join(self, peer: int, hello: Hello) -> list[Send]:
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {hello.version}; this hub speaks {PROTOCOL_VERSION}"
            )
        self._waiting.discard(peer)
        only = (peer,)
        sends = [Send(only, Welcome(peer))]
        for other, held in self._held.items():
            sends.extend(Send(only, PeerSubscribed(other, interest)) for interest in held)
        sends.append(Send(only, Ready()))
        self._names[peer] = hello.name
        self._held[peer] = Counts()
        return sends

    def _relay(self, sender: int, publish: Publish) -> list[Send]:
        # One copy per destination; destinations serving the same groups (most often
        # none: ungrouped subscribers) share one encoded frame.
        by_groups: dict[tuple[str, ...], list[int]] = {}
        seen = {sender}
        for destination in publish.destinations:
            peer = destination.peer
            if peer not in seen and peer in self._names:
                seen.add(peer)
                by_groups.setdefault(destination.groups, []).append(peer)
        return [
            Send(tuple(peers), Deliver(groups, publish.topic, publish.payload))
            for groups, peers in by_groups.items()
        ]

    def _to_others(self, peer: int, message: HubMessage) -> list[Send]:
        others = tuple(other for other in self._names if other != peer)
        return [Send(others, message)] if others else []
