"""The vLLM client against a local server that streams byte for byte like vLLM.

Timeouts are tens of milliseconds here; `HANG` only keeps a broken test from
hanging and nothing asserts on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing

import pytest

from agent.errors import GeneratorBroke, GeneratorUnavailable
from agent.generation.breaker import BreakerState
from agent.generation.sse import Usage
from agent.generation.vllm import VllmGenerator
from tests.support.fake_vllm import FakeVllm, Received, Script
from tests.support.generation import plain_messages, plain_request
from tests.support.processes import free_port
from tests.support.vllm_client import (
    HANG,
    MODEL,
    TEXT,
    circuit,
    collect,
    collect_until_error,
    settings,
    vllm_server,
)
from tests.support.waiting import eventually

# How soon the server must see the connection closed after the client gives up.
DISCONNECT_WITHIN = 1.0


@pytest.fixture
async def server() -> AsyncIterator[FakeVllm]:
    async with vllm_server() as fake:
        yield fake


async def hung_up(received: Received) -> None:
    async with asyncio.timeout(DISCONNECT_WITHIN):
        await received.disconnected.wait()


# -- streaming ------------------------------------------------------------------


async def test_a_stream_yields_the_text_and_records_the_usage(server: FakeVllm) -> None:
    reported: list[Usage] = []
    client = VllmGenerator(
        settings(server.base_url), build_messages=plain_messages, on_usage=reported.append
    )
    async with client:
        pieces = await collect(client)
    assert "".join(pieces) == TEXT
    usage = Usage(prompt_tokens=17, completion_tokens=7, total_tokens=24)
    assert client.last_usage == usage
    assert reported == [usage]
    assert client.name == "vllm"


async def test_deltas_read_together_come_out_as_one_piece(server: FakeVllm) -> None:
    server.default = Script(burst=True)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        assert await collect(client) == [TEXT]
        server.default = Script(burst=True, error_after=3)
        pieces, error = await collect_until_error(client)
    assert pieces == ["Hello, how"]  # the text before the error event, then the error
    assert isinstance(error, GeneratorBroke)


async def test_the_request_is_a_streaming_chat_completion() -> None:
    async with FakeVllm(model=MODEL, api_key="sekrit") as server:
        client = VllmGenerator(
            settings(server.base_url, api_key="sekrit", max_tokens=64, temperature=0.3),
            build_messages=plain_messages,
        )
        async with client:
            await collect(client, plain_request("my order is late"))
    (received,) = server.requests
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.headers["authorization"] == "Bearer sekrit"
    assert received.headers["content-type"] == "application/json"
    assert received.body == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "my order is late"},
        ],
        "max_completion_tokens": 64,
        "temperature": 0.3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
@pytest.mark.parametrize("prefix", ["", "/llm"])
async def test_the_url_reaches_the_endpoint_with_or_without_v1(prefix: str, suffix: str) -> None:
    async with FakeVllm(model=MODEL, path_prefix=prefix) as server:
        client = VllmGenerator(settings(server.base_url + suffix), build_messages=plain_messages)
        async with client:
            assert "".join(await collect(client)) == TEXT
    (received,) = server.requests
    assert received.path == f"{prefix}/v1/chat/completions"


async def test_the_api_key_is_not_in_the_settings_repr() -> None:
    assert "sekrit" not in repr(settings("http://127.0.0.1:1", api_key="sekrit"))


async def test_streams_reuse_one_pooled_connection(server: FakeVllm) -> None:
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        for _ in range(3):
            assert "".join(await collect(client)) == TEXT
    assert len(server.requests) == 3
    assert server.connections == 1


async def test_streams_open_at_once_are_not_capped_by_default(server: FakeVllm) -> None:
    # More than any small pool: each held stream keeps its own connection.
    streams_at_once = 40
    server.default = Script(endless=True, token_delay=0.01)
    client = VllmGenerator(settings(server.base_url), build_messages=plain_messages)
    async with client, asyncio.timeout(HANG), AsyncExitStack() as held:
        for _ in range(streams_at_once):
            stream = await held.enter_async_context(aclosing(await client.open(plain_request())))
            assert await anext(aiter(stream))
        assert server.connections == streams_at_once


async def test_max_connections_caps_the_streams_open_at_once(server: FakeVllm) -> None:
    server.default = Script(first_token_delay=0.05)
    config = settings(server.base_url, max_connections=2)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        replies = await asyncio.gather(*(collect(client) for _ in range(3)))
    assert ["".join(pieces) for pieces in replies] == [TEXT] * 3
    # The third waited for one of the two connections and took it over.
    assert server.connections == 2


async def test_events_cut_into_tiny_http_chunks_decode_whole(server: FakeVllm) -> None:
    server.default = Script(tokens=("你好", "，", "我在", "🙂"), fragment=3)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        assert "".join(await collect(client)) == "你好，我在🙂"


async def test_an_empty_reply_is_unavailable_but_not_the_servers_fault(server: FakeVllm) -> None:
    server.default = Script(tokens=())
    config = settings(server.base_url, breaker_failures=1)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="vllm: the reply was empty"):
            await collect(client)
        assert client.last_usage == Usage(prompt_tokens=17, completion_tokens=1, total_tokens=18)
        assert circuit(client) is BreakerState.CLOSED
    assert len(server.requests) == 1  # an answer, not a failure: not retried
    assert server.connections == 1


async def test_slow_tokens_within_the_bounds_are_fine(server: FakeVllm) -> None:
    server.default = Script(first_token_delay=0.1, token_delay=0.05)
    config = settings(server.base_url, first_token_timeout_s=1.0, between_tokens_timeout_s=1.0)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        assert "".join(await collect(client)) == TEXT
    assert len(server.requests) == 1


async def test_the_fake_speaks_vllms_bytes(server: FakeVllm) -> None:
    """The fake against a transcript written from vLLM's serving_chat.py, read raw."""
    server.default = Script(tokens=("Hi", "!"))
    body = (
        b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream":true,'
        b'"stream_options":{"include_usage":true}}' % MODEL.encode()
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        async with asyncio.timeout(HANG):
            head = await reader.readuntil(b"\r\n\r\n")
            chunks = []
            while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                chunks.append((await reader.readexactly(size + 2))[:-2])
    finally:
        writer.close()
        await writer.wait_closed()
    status, _date, *headers = head.decode().split("\r\n")[:-2]
    assert status == "HTTP/1.1 200 OK"
    assert headers == [
        "server: uvicorn",
        "content-type: text/event-stream; charset=utf-8",
        "transfer-encoding: chunked",
    ]
    prefix = (
        '{"id":"chatcmpl-00000000000000000000000000000001","object":"chat.completion.chunk",'
        f'"created":1732000000,"model":"{MODEL}","choices":'
    )
    assert [chunk.decode() for chunk in chunks] == [
        f'data: {prefix}[{{"index":0,"delta":{{"role":"assistant","content":""}},'
        '"logprobs":null,"finish_reason":null}]}\n\n',
        f'data: {prefix}[{{"index":0,"delta":{{"content":"Hi"}},"logprobs":null,'
        '"finish_reason":null}]}\n\n',
        f'data: {prefix}[{{"index":0,"delta":{{"content":"!"}},"logprobs":null,'
        '"finish_reason":null}]}\n\n',
        f'data: {prefix}[{{"index":0,"delta":{{"content":""}},"logprobs":null,'
        '"finish_reason":"stop","stop_reason":null}]}\n\n',
        f'data: {prefix}[],"usage":{{"prompt_tokens":17,"total_tokens":20,'
        '"completion_tokens":3}}\n\n',
        "data: [DONE]\n\n",
    ]


# -- before the first token: retried, then GeneratorUnavailable ---------------------


async def test_no_first_token_in_time_is_retried_then_unavailable(server: FakeVllm) -> None:
    server.default = Script(first_token_delay=HANG)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="no first token in time"):
            await collect(client)
    assert len(server.requests) == 3  # retries + 1
    for received in server.requests:
        await hung_up(received)  # every abandoned attempt was closed


async def test_a_stall_before_any_text_is_retried(server: FakeVllm) -> None:
    server.script(Script(stall_after=0))
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        assert "".join(await collect(client)) == TEXT
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_server_error_status_is_retried(server: FakeVllm, status: int) -> None:
    server.script(Script(status=status), Script(status=status))
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        assert "".join(await collect(client)) == TEXT
    assert len(server.requests) == 3


async def test_retries_run_out_into_unavailable(server: FakeVllm) -> None:
    server.default = Script(status=503, error_message="engine is sleeping")
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="HTTP 503 ServiceUnavailableError") as info:
            await collect(client)
    assert "engine is sleeping" not in str(info.value)  # server text stays out of errors
    assert len(server.requests) == 3


@pytest.mark.parametrize("legacy", [False, True])
async def test_a_bad_request_is_not_retried(server: FakeVllm, legacy: bool) -> None:
    server.default = Script(status=400, legacy_errors=legacy, error_message="too long")
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="HTTP 400 BadRequestError"):
            await collect(client)
    assert len(server.requests) == 1


async def test_a_refusal_is_read_whole_and_its_connection_reused(server: FakeVllm) -> None:
    server.script(Script(status=400))
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="HTTP 400 BadRequestError"):
            await collect(client)
        assert "".join(await collect(client)) == TEXT
    assert server.connections == 1


async def test_a_huge_error_body_is_read_only_in_part(server: FakeVllm) -> None:
    server.script(Script(status=400, error_message="x" * (256 * 1024)))
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match=r"HTTP 400$"):  # its JSON was cut
            await collect(client)
        assert "".join(await collect(client)) == TEXT
    assert server.connections == 2  # the rest of the body went with its connection


async def test_an_unknown_model_is_not_retried(server: FakeVllm) -> None:
    config = settings(server.base_url, model="no-such-model")
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="HTTP 404 NotFoundError"):
            await collect(client)
    assert len(server.requests) == 1


async def test_a_wrong_api_key_is_not_retried() -> None:
    async with FakeVllm(model=MODEL, api_key="right") as server:
        config = settings(server.base_url, api_key="wrong")
        async with VllmGenerator(config, build_messages=plain_messages) as client:
            with pytest.raises(GeneratorUnavailable, match="HTTP 401"):
                await collect(client)
        assert len(server.requests) == 1


async def test_a_refused_connection_is_unavailable() -> None:
    config = settings(f"http://127.0.0.1:{free_port()}")
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        with pytest.raises(GeneratorUnavailable, match="request failed: ClientConnectorError"):
            await collect(client)


@pytest.mark.parametrize(
    "first",
    [
        Script(truncate_after=0),
        Script(truncate_after=0, abrupt=False),
        Script(error_after=0),
    ],
    ids=["dropped", "ended-without-done", "error-event"],
)
async def test_a_broken_stream_before_the_first_token_is_retried(
    server: FakeVllm, first: Script
) -> None:
    server.script(first)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        assert "".join(await collect(client)) == TEXT
    assert len(server.requests) == 2


# -- after the first token: GeneratorBroke, never retried ----------------------------


async def test_silence_after_the_first_token_breaks_without_retry(server: FakeVllm) -> None:
    server.default = Script(stall_after=2)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        pieces, error = await collect_until_error(client)
    assert "".join(pieces) == "Hello,"
    assert isinstance(error, GeneratorBroke)
    assert "no token in time" in str(error)
    assert len(server.requests) == 1
    await hung_up(server.requests[0])


@pytest.mark.parametrize("abrupt", [True, False], ids=["dropped", "ended-without-done"])
async def test_a_truncated_stream_breaks(server: FakeVllm, abrupt: bool) -> None:
    server.default = Script(truncate_after=3, abrupt=abrupt)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        pieces, error = await collect_until_error(client)
    assert "".join(pieces) == "Hello, how"
    assert isinstance(error, GeneratorBroke)
    assert len(server.requests) == 1


@pytest.mark.parametrize("legacy", [False, True])
async def test_an_error_event_mid_stream_breaks(server: FakeVllm, legacy: bool) -> None:
    server.default = Script(error_after=2, legacy_errors=legacy, error_message="CUDA OOM")
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        pieces, error = await collect_until_error(client)
    assert "".join(pieces) == "Hello,"
    assert isinstance(error, GeneratorBroke)
    assert "error event InternalServerError 500" in str(error)
    assert "CUDA" not in str(error)
    assert len(server.requests) == 1


async def test_the_total_deadline_breaks_an_endless_stream(server: FakeVllm) -> None:
    server.default = Script(endless=True, token_delay=0.01)
    config = settings(server.base_url, total_timeout_s=0.3)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        pieces, error = await collect_until_error(client)
    assert isinstance(error, GeneratorBroke)
    assert "total timeout" in str(error)
    assert len(pieces) > 5
    await hung_up(server.requests[0])


# -- cancellation closes the upstream request ----------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream_request(server: FakeVllm) -> None:
    server.default = Script(endless=True, token_delay=0.005)
    got: list[str] = []
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:

        async def consume() -> None:
            async with aclosing(await client.open(plain_request())) as stream:
                async for piece in stream:
                    got.append(piece)

        task = asyncio.create_task(consume())
        await eventually(lambda: len(got) >= 5, within=HANG)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (received,) = server.requests
        await hung_up(received)
        sent = received.tokens_sent
        await asyncio.sleep(0.05)
        assert received.tokens_sent == sent  # the server stopped producing
        assert circuit(client) is BreakerState.CLOSED


async def test_closing_the_iterator_closes_the_upstream_request(server: FakeVllm) -> None:
    server.default = Script(endless=True, token_delay=0.005)
    async with VllmGenerator(settings(server.base_url), build_messages=plain_messages) as client:
        stream = await client.open(plain_request())
        assert "".join([await anext(stream.pieces) for _ in range(3)]).startswith("Hello")
        await stream.aclose()
        await hung_up(server.requests[0])
        # The pool is fine afterwards: a new request opens a new connection.
        server.default = Script()
        assert "".join(await collect(client)) == TEXT
    assert server.connections == 2  # the half-read response's connection was not reused


async def test_cancelling_before_the_first_token_closes_the_request(server: FakeVllm) -> None:
    server.default = Script(first_token_delay=HANG)
    config = settings(server.base_url, first_token_timeout_s=HANG)
    async with VllmGenerator(config, build_messages=plain_messages) as client:
        task = asyncio.create_task(collect(client))
        await eventually(lambda: len(server.requests) == 1, within=HANG)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await hung_up(server.requests[0])
    assert len(server.requests) == 1  # a cancellation is not retried
