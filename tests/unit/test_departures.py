"""Departures: which other workers fell silent, from their beats."""

from __future__ import annotations

from agent.dialogue.departures import Departures
from agent.events import WorkerBeat


def _beat(worker: str, *, ready: bool = True) -> WorkerBeat:
    return WorkerBeat(worker_id=worker, ready=ready, at=0.0)


def test_a_worker_silent_for_longer_than_the_window_is_named_once() -> None:
    departures = Departures(me="me", window=2.0)
    departures.beat(_beat("a"), now=0.0)
    departures.beat(_beat("b"), now=0.0)
    departures.beat(_beat("b"), now=1.5)
    assert departures.silent(now=2.0) == []
    assert departures.silent(now=2.1) == ["a"]
    assert departures.silent(now=2.2) == []  # named once
    assert departures.silent(now=3.6) == ["b"]


def test_a_worker_heard_again_is_watched_again() -> None:
    departures = Departures(me="me", window=1.0)
    departures.beat(_beat("a"), now=0.0)
    assert departures.silent(now=5.0) == ["a"]
    departures.beat(_beat("a"), now=6.0)  # it was only held up
    assert departures.silent(now=7.5) == ["a"]


def test_a_leaving_worker_and_this_worker_itself_are_not_watched() -> None:
    departures = Departures(me="me", window=1.0)
    departures.beat(_beat("me"), now=0.0)
    departures.beat(_beat("a"), now=0.0)
    departures.beat(_beat("a", ready=False), now=0.5)  # it hands its turns over itself
    assert departures.silent(now=10.0) == []
