"""The linked bus's pure core: who gets an event, the hub's relaying, the frames."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.inprocess import InProcessBus
from agent.bus.link.relay import HubCore, ProtocolError, Send
from agent.bus.link.routing import Counts, RemoteInterests
from agent.bus.link.wire import (
    Deliver,
    Destination,
    FrameReader,
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
    encode_frame,
    parse_from_hub,
    parse_from_link,
)
from agent.errors import EventDecodeError
from agent.events import Cancel

A, B, C = 1, 2, 3  # other processes, by the ids the hub gave them


def table(*held: tuple[int, str, str | None]) -> RemoteInterests:
    interests = RemoteInterests()
    for peer, topic_filter, group in held:
        interests.add(peer, Interest(topic_filter, group))
    return interests


def routed(
    interests: RemoteInterests, topic: str, served: tuple[str, ...] = ()
) -> dict[int, set[str]]:
    return {d.peer: set(d.groups) for d in interests.route(topic, served)}


# Routing: ungrouped


def test_nothing_leaves_when_no_other_process_wants_the_topic() -> None:
    interests = table((A, "hl/v1/reply/s1", None), (B, "hl/v1/turn/+", "workers"))
    assert interests.route("hl/v1/reply/s2", ()) == ()
    assert RemoteInterests().route("anything", ()) == ()


def test_an_ungrouped_event_goes_once_to_every_interested_process() -> None:
    interests = table(
        (A, "hl/v1/session/s1", None),
        (A, "hl/v1/session/+", None),  # two filters of one process: still one copy
        (B, "hl/v1/#", None),
        (C, "hl/v1/reply/+", None),
    )
    assert routed(interests, "hl/v1/session/s1") == {A: set(), B: set()}
    assert interests.interested("hl/v1/session/s1") == {A, B}


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+/c", "a/b/c", True),
        ("+/b", "a/b", True),
        ("a/#", "a", True),  # '#' matches its parent level too
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("a/#", "ab/c", False),
        ("#", "anything/at/all", True),
        ("a/b", "a/b", True),
        ("a/b", "a/bc", False),
    ],
)
def test_wildcards_match_as_mqtt_does(topic_filter: str, topic: str, expected: bool) -> None:
    interests = table((A, topic_filter, None))
    assert (A in routed(interests, topic)) is expected


# Routing: groups


def test_a_group_served_by_the_publisher_never_leaves_its_process() -> None:
    interests = table((A, "hl/v1/turn/+", "workers"), (B, "hl/v1/turn/+", "workers"))
    assert routed(interests, "hl/v1/turn/s1", served=("workers",)) == {}


def test_a_group_the_publisher_lacks_goes_to_exactly_one_process() -> None:
    interests = table((A, "t/+", "g"), (B, "t/#", "g"), (C, "t/x", None))
    destinations = interests.route("t/x", ())
    takers = [d.peer for d in destinations if "g" in d.groups]
    assert len(takers) == 1
    assert takers[0] in {A, B}
    # The ungrouped process gets its copy; a process gets one copy whatever it serves.
    assert C in {d.peer for d in destinations}
    assert len({d.peer for d in destinations}) == len(destinations)


def test_remote_group_members_take_turns() -> None:
    interests = table((A, "t/+", "g"), (B, "t/+", "g"), (C, "t/+", "g"))
    picks = [routed(interests, f"t/{n}") for n in range(9)]
    assert [next(iter(p)) for p in picks] == [A, B, C] * 3
    assert all(p[next(iter(p))] == {"g"} for p in picks)


def test_the_turn_moves_on_when_a_member_leaves() -> None:
    interests = table((A, "t", "g"), (B, "t", "g"), (C, "t", "g"))
    assert next(iter(routed(interests, "t"))) == A
    interests.drop_peer(B)
    assert [next(iter(routed(interests, "t"))) for _ in range(4)] == [C, A, C, A]


def test_groups_and_ungrouped_copies_merge_per_process() -> None:
    interests = table((A, "t/+", None), (A, "t/#", "g"), (A, "t/+", "h"), (B, "t/1", "h"))
    destinations = routed(interests, "t/1", served=("h",))
    assert destinations == {A: {"g"}}


def test_groups_are_independent() -> None:
    interests = table((A, "t", "g"), (B, "t", "h"))
    assert routed(interests, "t") == {A: {"g"}, B: {"h"}}
    assert routed(interests, "t", served=("g",)) == {B: {"h"}}


def test_a_remembered_route_follows_new_and_removed_interests() -> None:
    interests = table((A, "t/+", None))
    assert routed(interests, "t/1") == {A: set()}
    interests.add(B, Interest("t/#", "g"))
    assert routed(interests, "t/1") == {A: set(), B: {"g"}}
    interests.add(C, Interest("t/1"))
    assert routed(interests, "t/1") == {A: set(), B: {"g"}, C: set()}
    interests.drop_peer(A)
    interests.remove(C, Interest("t/1"))
    assert routed(interests, "t/1") == {B: {"g"}}
    interests.remove(B, Interest("t/#", "g"))
    assert routed(interests, "t/1") == {}


# Local delivery, as a link uses it


async def test_local_delivery_says_which_groups_it_served() -> None:
    async with (
        InProcessBus() as bus,
        bus.subscribe("t/+", group="g") as g,
        bus.subscribe("t/+", group="h") as h,
        bus.subscribe("t/+") as everyone,
    ):
        assert sorted(bus.deliver("t/1", _cancel("t1"))) == ["g", "h"]
        # Routed here for one group: that group's member and the ungrouped take it.
        assert list(bus.deliver("t/1", _cancel("t2"), only=("h",))) == ["h"]
        assert list(bus.deliver("t/1", _cancel("t3"), only=())) == []
        assert list(bus.deliver("u/1", _cancel("t4"))) == []
        assert [(await g.get()).event.turn_id] == ["t1"]
        assert [(await h.get()).event.turn_id for _ in range(2)] == ["t1", "t2"]
        assert [(await everyone.get()).event.turn_id for _ in range(3)] == ["t1", "t2", "t3"]


async def test_a_group_whose_members_all_ended_is_not_served() -> None:
    async with InProcessBus() as bus, bus.subscribe("t", group="g", max_queued=1) as member:
        bus.deliver("t", _cancel("t1"))
        bus.deliver("t", _cancel("t2"))  # overflows: the member is cut off
        assert member.closed
        assert list(bus.deliver("t", _cancel("t3"))) == []


def _cancel(turn: str) -> Cancel:
    return Cancel(session_id="s", turn_id=turn, reason="client")


# Interest counts


def test_two_processes_hold_one_filter_and_one_leaves() -> None:
    interests = table((A, "hl/v1/ops/#", None), (B, "hl/v1/ops/#", None))
    assert routed(interests, "hl/v1/ops/x") == {A: set(), B: set()}
    interests.remove(B, Interest("hl/v1/ops/#"))
    assert routed(interests, "hl/v1/ops/x") == {A: set()}
    interests.remove(A, Interest("hl/v1/ops/#"))
    assert routed(interests, "hl/v1/ops/x") == {}
    assert interests.peers == frozenset()


def test_one_process_holding_a_filter_twice_keeps_it_until_both_leave() -> None:
    interests = table((A, "x", None), (A, "x", None))
    interests.remove(A, Interest("x"))
    assert routed(interests, "x") == {A: set()}
    interests.remove(A, Interest("x"))
    assert routed(interests, "x") == {}


def test_removing_what_was_never_held_changes_nothing() -> None:
    interests = table((A, "x", None))
    interests.remove(A, Interest("y"))
    interests.remove(B, Interest("x"))
    interests.drop_peer(C)
    assert routed(interests, "x") == {A: set()}


def test_a_process_that_leaves_loses_all_its_interests() -> None:
    interests = table((A, "x", None), (A, "y/+", "g"), (B, "x", None))
    interests.drop_peer(A)
    assert routed(interests, "x") == {B: set()}
    assert routed(interests, "y/1") == {}


def test_counts_say_first_and_last() -> None:
    counts: Counts[str] = Counts()
    assert counts.add("k") is True
    assert counts.add("k") is False
    assert counts.remove("k") is False
    assert counts.remove("k") is True
    assert counts.remove("k") is False
    assert "k" not in counts
    assert len(counts) == 0


# The hub's core


def joined(hub: HubCore, name: str) -> tuple[int, list[Send]]:
    peer = hub.connect()
    return peer, hub.receive(peer, Hello(name))


def test_a_link_joining_gets_its_id_the_others_interests_and_ready() -> None:
    hub = HubCore()
    first, _ = joined(hub, "one")
    hub.receive(first, Subscribe(Interest("t/+", "g")))
    hub.receive(first, Subscribe(Interest("r/1")))
    second, greeting = joined(hub, "two")
    assert all(send.peers == (second,) for send in greeting)
    messages = [send.message for send in greeting]
    assert messages[0] == Welcome(second)
    assert set(messages[1:-1]) == {
        PeerSubscribed(first, Interest("t/+", "g")),
        PeerSubscribed(first, Interest("r/1")),
    }
    assert messages[-1] == Ready()
    assert hub.joined == {first: "one", second: "two"}


def test_interest_changes_reach_the_other_links_once() -> None:
    hub = HubCore()
    one, _ = joined(hub, "one")
    two, _ = joined(hub, "two")
    three, _ = joined(hub, "three")
    interest = Interest("x")
    assert hub.receive(one, Subscribe(interest)) == [
        Send((two, three), PeerSubscribed(one, interest))
    ]
    assert hub.receive(one, Subscribe(interest)) == []  # counted, not repeated
    assert hub.receive(one, Unsubscribe(interest)) == []
    assert hub.receive(one, Unsubscribe(interest)) == [
        Send((two, three), PeerUnsubscribed(one, interest))
    ]
    assert hub.receive(one, Unsubscribe(interest)) == []


def test_a_link_that_leaves_is_announced_gone_if_it_held_anything() -> None:
    hub = HubCore()
    one, _ = joined(hub, "one")
    two, _ = joined(hub, "two")
    assert hub.disconnect(two) == []
    three, _ = joined(hub, "three")
    hub.receive(one, Subscribe(Interest("x")))
    assert hub.disconnect(one) == [Send((three,), PeerGone(one))]
    assert hub.disconnect(one) == []


def test_the_hub_relays_each_destination_its_copy() -> None:
    hub = HubCore()
    one, _ = joined(hub, "one")
    two, _ = joined(hub, "two")
    three, _ = joined(hub, "three")
    four, _ = joined(hub, "four")
    publish = Publish(
        (
            Destination(two),
            Destination(three, ("g",)),
            Destination(four),
            Destination(99),  # gone: dropped
            Destination(one),  # the sender itself: never echoed
            Destination(two, ("g",)),  # a second copy for one link: dropped
        ),
        "t/1",
        b"{}",
    )
    assert hub.receive(one, publish) == [
        Send((two, four), Deliver((), "t/1", b"{}")),
        Send((three,), Deliver(("g",), "t/1", b"{}")),
    ]


def test_the_hub_refuses_a_link_that_skips_its_greeting_or_speaks_another_version() -> None:
    hub = HubCore()
    peer = hub.connect()
    with pytest.raises(ProtocolError):
        hub.receive(peer, Subscribe(Interest("x")))
    other = hub.connect()
    with pytest.raises(ProtocolError):
        hub.receive(other, Hello("old", version=0))
    third, _ = joined(hub, "three")
    with pytest.raises(ProtocolError):
        hub.receive(third, Hello("again"))


# Frames

_names = st.text(min_size=1, max_size=40)
_interests = st.builds(Interest, _names, st.none() | _names)
_payloads = st.binary(min_size=1, max_size=200)
_topics = _names.filter(lambda t: "+" not in t and "#" not in t)
_groups = st.lists(_names, max_size=3).map(tuple)
_peers = st.integers(min_value=0, max_value=2**32 - 1)

_link_messages: st.SearchStrategy[LinkMessage] = st.one_of(
    st.builds(Hello, st.text(max_size=40)),
    st.builds(Subscribe, _interests),
    st.builds(Unsubscribe, _interests),
    st.builds(
        Publish,
        st.lists(st.builds(Destination, _peers, _groups), min_size=1, max_size=4).map(tuple),
        _topics,
        _payloads,
    ),
)
_hub_messages: st.SearchStrategy[HubMessage] = st.one_of(
    st.builds(Welcome, _peers),
    st.builds(PeerSubscribed, _peers, _interests),
    st.builds(PeerUnsubscribed, _peers, _interests),
    st.builds(PeerGone, _peers),
    st.just(Ready()),
    st.builds(Deliver, _groups, _topics, _payloads),
)


@given(messages=st.lists(_link_messages, max_size=5), cut=st.integers(min_value=1, max_value=7))
def test_link_messages_survive_the_wire_in_any_chunks(
    messages: list[LinkMessage], cut: int
) -> None:
    stream = b"".join(encode_frame(message) for message in messages)
    reader = FrameReader()
    bodies = [
        body for at in range(0, len(stream), cut) for body in reader.feed(stream[at : at + cut])
    ]
    assert [parse_from_link(body) for body in bodies] == messages


@given(message=_hub_messages)
def test_hub_messages_survive_the_wire(message: HubMessage) -> None:
    (body,) = FrameReader().feed(encode_frame(message))
    assert parse_from_hub(body) == message


@given(garbage=st.binary(max_size=64))
def test_garbage_is_refused_never_crashes(garbage: bytes) -> None:
    for parse in (parse_from_link, parse_from_hub):
        with contextlib.suppress(EventDecodeError):
            parse(garbage)
    with contextlib.suppress(EventDecodeError):
        FrameReader(max_frame_bytes=32).feed(garbage)


def test_a_frame_too_long_or_empty_is_refused() -> None:
    with pytest.raises(EventDecodeError, match="frame of 33 bytes"):
        FrameReader(max_frame_bytes=32).feed((33).to_bytes(4, "big") + b"x")
    with pytest.raises(EventDecodeError):
        FrameReader().feed(bytes(4))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x63",  # no such kind
        encode_frame(Welcome(1))[4:],  # the hub's message, read as the link's
        encode_frame(Subscribe(Interest("x")))[4:-1],  # cut short
        encode_frame(Subscribe(Interest("x")))[4:] + b"!",  # trailing bytes
        b"\x02\x00\x00\x00\x00",  # empty filter
        b"\x02\x00\x02\xff\xfe\x00\x00",  # not UTF-8
        b"\x04\x00\x00\x00\x01x{}",  # publish to no one
        encode_frame(Publish((Destination(1),), "t", b"x"))[4:-1],  # no payload
    ],
)
def test_malformed_link_frames_are_refused(body: bytes) -> None:
    with pytest.raises(EventDecodeError):
        parse_from_link(body)


def test_a_publish_to_a_wildcard_topic_is_refused_on_the_wire() -> None:
    body = encode_frame(Deliver((), "t/+", b"{}"))[4:]
    with pytest.raises(EventDecodeError):
        parse_from_hub(body)
