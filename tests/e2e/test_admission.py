"""Admission control end to end: beyond its limit a gateway refuses turns at once."""

from __future__ import annotations

import asyncio
import json

import httpx

from agent import topics
from agent.events import UserTurn
from agent.gateway.admission import AdmissionLimits
from tests.support.events import reply_ended
from tests.support.gateway import WAIT_S, bearer, next_event, receive, running, send, session


async def test_beyond_the_limit_a_turn_is_refused_at_once_and_can_be_sent_again() -> None:
    limits = AdmissionLimits(max_in_flight=2, max_wait_s=60)
    async with (
        running(admission=limits) as env,
        env.bus.subscribe(topics.ALL_TURNS) as turns,
        session(env, "ann") as (ann, ann_session),
        session(env, "bob") as (bob, _),
        session(env, "cat") as (cat, _),
    ):
        await send(ann, type="user_message", id="a1", text="where is my parcel?")
        await send(bob, type="user_message", id="b1", text="my card was charged twice")
        for _ in range(2):
            _, turn = await next_event(turns)
            assert isinstance(turn, UserTurn)

        await send(cat, type="user_message", id="c1", text="hello?")
        refused = await receive(cat)
        assert (refused["type"], refused["code"], refused["turn_id"]) == (
            "error",
            "overloaded",
            "c1",
        )
        assert refused["retry_after_ms"] > 0

        base = f"{env.gateway.http_url}/v1"
        async with httpx.AsyncClient(base_url=base, headers=bearer("dan"), timeout=10) as http:
            for stream in (False, True):
                answer = await http.post(
                    "/chat/completions",
                    json={
                        "model": "heartline",
                        "messages": [{"role": "user", "content": "hi"}],
                        "stream": stream,
                    },
                )
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "overloaded"
                assert int(answer.headers["retry-after-ms"]) > 0
                assert int(answer.headers["Retry-After"]) >= 1

        # A reply ends: there is room again, and the refused id is still free.
        await env.bus.publish(topics.reply(ann_session), reply_ended(ann_session, "a1"))
        while (await receive(ann))["type"] != "reply_end":
            pass  # the reply, sent whole before its end (its pieces never came)
        await send(cat, type="user_message", id="c1", text="hello?")
        _, turn = await next_event(turns)
    assert isinstance(turn, UserTurn)
    assert (turn.turn_id, turn.seq) == ("c1", 1)
    counted = env.metrics.registry.get_sample_value(
        "heartline_errors_total", {"code": "overloaded"}
    )
    assert counted == 3  # one over the WebSocket, two over HTTP


async def test_a_session_that_closes_gives_its_places_back() -> None:
    limits = AdmissionLimits(max_in_flight=1, max_wait_s=60)
    async with running(admission=limits) as env, env.bus.subscribe(topics.ALL_TURNS) as turns:
        async with session(env, "ann") as (ann, _):
            await send(ann, type="user_message", id="a1", text="where is my parcel?")
            await next_event(turns)
        async with session(env, "bob") as (bob, _):
            async with asyncio.timeout(WAIT_S):
                # Until the server has seen ann's connection go (it may lag the close).
                while True:
                    await send(bob, type="user_message", id="b1", text="and mine?")
                    try:
                        async with asyncio.timeout(0.2):
                            refused = await bob.recv()
                    except TimeoutError:
                        break
                    assert json.loads(refused)["code"] == "overloaded"
            _, turn = await next_event(turns)
    assert isinstance(turn, UserTurn)
    assert turn.turn_id == "b1"
