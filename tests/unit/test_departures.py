"""Departures: which workers holding turns stopped beating."""

from __future__ import annotations

from agent.dialogue.departures import Departures
from agent.events import WorkerBeat


def _beat(worker: str, *, ready: bool = True) -> WorkerBeat:
    return WorkerBeat(worker_id=worker, ready=ready, at=0.0)


def test_a_holder_silent_for_longer_than_the_window_is_gone() -> None:
    departures = Departures(me="me", window=2.0)
    departures.beat(_beat("a"), now=0.0)
    departures.beat(_beat("b"), now=1.5)
    assert departures.gone({"a", "b"}, now=2.0, listening_since=0.0) == []
    assert departures.gone({"a", "b"}, now=2.1, listening_since=0.0) == ["a"]
    assert departures.gone({"b"}, now=3.0, listening_since=0.0) == []  # a holds nothing any more
    departures.beat(_beat("a"), now=3.0)  # it was only held up
    assert departures.gone({"a", "b"}, now=3.6, listening_since=0.0) == ["b"]


def test_holders_never_heard_are_gone_once_this_worker_has_listened_a_window() -> None:
    departures = Departures(me="me", window=2.0)  # started at 10, after they died
    assert (
        departures.gone({"old1", "old2"}, now=11.0, listening_since=10.0) == []
    )  # not yet: still listening
    departures.beat(_beat("new"), now=11.5)
    assert departures.gone({"old1", "old2", "new", "me"}, now=12.0, listening_since=10.0) == [
        "old1",
        "old2",
    ]


def test_a_stopping_worker_is_alive_while_it_beats() -> None:
    departures = Departures(me="me", window=2.0)
    departures.beat(_beat("a"), now=2.0)
    departures.beat(_beat("a", ready=False), now=3.5)  # finishing its turns
    assert departures.gone({"a"}, now=5.0, listening_since=0.0) == []
    assert departures.gone({"a"}, now=5.6, listening_since=0.0) == ["a"]  # it exited holding one


def test_no_one_is_judged_while_or_just_after_the_bus_is_cut_off() -> None:
    departures = Departures(me="me", window=2.0)
    departures.beat(_beat("a"), now=0.0)
    assert departures.gone({"a"}, now=10.0, listening_since=None) == []
    # Back at 9.5: a's beats may just not have come through yet.
    assert departures.gone({"a"}, now=11.0, listening_since=9.5) == []
    assert departures.gone({"a"}, now=11.6, listening_since=9.5) == ["a"]
