"""Which other processes get an event, sans I/O: a link's table of their interests.

Each link keeps `RemoteInterests`, the (filter, group) pairs the other processes
subscribe to, fed by the hub's `PeerSubscribed` / `PeerUnsubscribed` / `PeerGone`
messages. A publish asks it for the event's destinations:

- every process with a matching ungrouped subscription gets one copy;
- every group that matches and that the publishing process did not serve
  itself goes to one process with a member, round robin among them;
- both are merged, so a process gets at most one copy, naming its groups.

An exact filter is found by a dict lookup on the topic; a wildcard filter is
matched level by level only when the topic has the filter's literal start. The
entries a topic matches are remembered until the set of (filter, group) pairs
changes, so a topic published again (a reply's deltas) costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Container, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agent.bus.base import literal_start, topic_matches
from agent.bus.link.wire import Destination, Interest

__all__ = ["Counts", "RemoteInterests"]

_K = TypeVar("_K", bound=Hashable)
_NOWHERE: tuple[Destination, ...] = ()
_CACHED_TOPICS = 4096  # then the memo starts over


class Counts(Generic[_K]):
    """How many times each key is held; says when a key is first taken and last let go."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[_K, int] = {}

    def add(self, key: _K) -> bool:
        """Count `key` once more; true if it was not held before."""
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count == 1

    def remove(self, key: _K) -> bool:
        """Count `key` once less; true if that was its last hold (false if not held)."""
        count = self._counts.get(key, 0)
        if count <= 1:
            return self._counts.pop(key, None) is not None
        self._counts[key] = count - 1
        return False

    def __contains__(self, key: object) -> bool:
        return key in self._counts

    def __iter__(self) -> Iterator[_K]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)


@dataclass(slots=True, eq=False)
class _Entry:
    """One (filter, group) and the processes holding it."""

    interest: Interest
    start: str
    peers: set[int] = field(default_factory=set)


class RemoteInterests:
    """The other processes' interests, counted per process, and the routes they imply."""

    def __init__(self) -> None:
        self._held: dict[int, Counts[Interest]] = {}
        self._entries: dict[Interest, _Entry] = {}
        self._exact: dict[str, list[_Entry]] = {}
        self._wildcard: list[_Entry] = []
        self._last_pick: dict[str, int] = {}
        self._memo: dict[str, tuple[_Entry, ...]] = {}  # topic -> the entries it matches

    @property
    def peers(self) -> frozenset[int]:
        """The processes that hold at least one interest."""
        return frozenset(self._held)

    def add(self, peer: int, interest: Interest) -> None:
        held = self._held.setdefault(peer, Counts())
        if not held.add(interest):
            return
        entry = self._entries.get(interest)
        if entry is None:
            entry = _Entry(interest, literal_start(interest.topic_filter))
            self._entries[interest] = entry
            self._memo.clear()
            if interest.wildcard:
                self._wildcard.append(entry)
            else:
                self._exact.setdefault(interest.topic_filter, []).append(entry)
        entry.peers.add(peer)

    def remove(self, peer: int, interest: Interest) -> None:
        held = self._held.get(peer)
        if held is None or not held.remove(interest):
            return
        if not held:
            del self._held[peer]
        self._let_go(peer, interest)

    def drop_peer(self, peer: int) -> None:
        """Forget everything `peer` held (it left the hub)."""
        for interest in self._held.pop(peer, ()):
            self._let_go(peer, interest)

    def _let_go(self, peer: int, interest: Interest) -> None:
        entry = self._entries[interest]
        entry.peers.discard(peer)
        if entry.peers:
            return
        del self._entries[interest]
        self._memo.clear()
        if interest.wildcard:
            self._wildcard.remove(entry)
            return
        entries = self._exact[interest.topic_filter]
        entries.remove(entry)
        if not entries:
            del self._exact[interest.topic_filter]

    def interested(self, topic: str) -> frozenset[int]:
        """The processes with any subscription matching `topic`."""
        return frozenset(peer for entry in self._matching(topic) for peer in entry.peers)

    def route(self, topic: str, served: Container[str]) -> tuple[Destination, ...]:
        """Where an event on `topic` goes, given the groups the publisher `served` itself.

        Empty, and cheap, when no other process wants the topic.
        """
        matching = self._matching(topic)
        if not matching:
            return _NOWHERE
        everyone: set[int] = set()
        groups: dict[str, set[int]] = {}
        for entry in matching:
            group = entry.interest.group
            if group is None:
                everyone.update(entry.peers)
            elif group not in served:
                groups.setdefault(group, set()).update(entry.peers)
        chosen: dict[int, list[str]] = {peer: [] for peer in everyone}
        for group, members in groups.items():
            chosen.setdefault(self._pick(group, members), []).append(group)
        return tuple(Destination(peer, tuple(names)) for peer, names in chosen.items())

    def _matching(self, topic: str) -> tuple[_Entry, ...]:
        matching = self._memo.get(topic)
        if matching is None:
            matching = (
                *self._exact.get(topic, ()),
                *(
                    entry
                    for entry in self._wildcard
                    if topic.startswith(entry.start)
                    and topic_matches(entry.interest.topic_filter, topic)
                ),
            )
            if len(self._memo) >= _CACHED_TOPICS:
                self._memo.clear()
            self._memo[topic] = matching
        return matching

    def _pick(self, group: str, members: set[int]) -> int:
        """The member after the one this group went to last (by id, wrapping round)."""
        last = self._last_pick.get(group, -1)
        later = [peer for peer in members if peer > last]
        peer = min(later) if later else min(members)
        self._last_pick[group] = peer
        return peer
