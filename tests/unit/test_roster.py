"""The gateway's view of the workers, from their beats."""

from __future__ import annotations

from agent.events import WorkerBeat
from agent.gateway.roster import Availability, WorkerRoster


def _beat(worker: str, *, ready: bool = True) -> WorkerBeat:
    return WorkerBeat(worker_id=worker, ready=ready, at=0.0)


def test_unknown_at_first_then_none_without_a_beat() -> None:
    roster = WorkerRoster(interval=2.0)
    assert roster.availability(100.0, listening_since=100.0) is Availability.UNKNOWN
    assert roster.availability(106.0, listening_since=100.0) is Availability.UNKNOWN
    assert roster.availability(106.1, listening_since=100.0) is Availability.NONE


def test_unknown_again_while_and_just_after_the_bus_is_cut_off() -> None:
    roster = WorkerRoster(interval=2.0)
    roster.beat(_beat("w1"), now=1.0)
    assert roster.availability(20.0, listening_since=None) is Availability.UNKNOWN
    # Reconnected at 19: the worker's beats may just not have come through yet.
    assert roster.availability(24.0, listening_since=19.0) is Availability.UNKNOWN
    assert roster.availability(25.1, listening_since=19.0) is Availability.NONE
    roster.beat(_beat("w1"), now=21.0)
    assert roster.availability(22.0, listening_since=19.0) is Availability.AVAILABLE


def test_a_worker_counts_while_its_beats_come() -> None:
    roster = WorkerRoster(interval=2.0)
    roster.beat(_beat("w1"), now=1.0)
    roster.beat(_beat("w2"), now=2.0)
    assert (roster.availability(3.0, listening_since=0.0), roster.count(3.0)) == (
        Availability.AVAILABLE,
        2,
    )
    assert roster.count(7.5) == 1  # w1 missed three beats
    assert roster.availability(8.5, listening_since=0.0) is Availability.NONE


def test_a_leaving_worker_is_gone_at_once() -> None:
    roster = WorkerRoster(interval=2.0)
    roster.beat(_beat("w1"), now=10.0)
    roster.beat(_beat("w1", ready=False), now=10.5)
    assert roster.availability(10.5, listening_since=0.0) is Availability.NONE


def test_a_worker_coming_or_going_is_a_change() -> None:
    roster = WorkerRoster(interval=2.0)
    assert roster.changed_at == float("-inf")
    roster.beat(_beat("w1"), now=1.0)
    roster.beat(_beat("w1"), now=2.0)  # the same worker again: no change
    assert roster.changed_at == 1.0
    roster.beat(_beat("w2"), now=3.0)
    assert roster.changed_at == 3.0
    roster.beat(_beat("w2", ready=False), now=4.0)  # leaving
    assert roster.changed_at == 4.0
    roster.count(9.0)  # w1 fell silent
    assert roster.changed_at == 9.0
