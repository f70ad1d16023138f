"""The local generator against a tiny randomly initialised GPT-2 built here: no network.

The model and its word-level tokenizer are written with `save_pretrained` to a
temporary directory and loaded back as any local model is. A random model
writes random words from the vocabulary, which is all these tests need.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from websockets.asyncio.client import connect

from agent.app import embedded
from agent.config import load_settings
from agent.errors import ConfigError, GeneratorUnavailable
from agent.generation.base import GenerationRequest, Generator
from agent.generation.local import LocalModelGenerator, LocalModelSettings
from tests.support.generation import plain_messages, plain_request

WORDS = (
    "system", "user", "assistant", ":", "be", "kind", "where", "is", "my", "parcel", "hello",
    "how", "are", "you", "today", "it", "will", "arrive", "soon", "sorry", "thanks", "the",
)  # fmt: skip
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
CONTEXT = 1024
THREAD = "heartline-local-generate"
HANG = 30.0  # only keeps a broken test from hanging


def build(directory: Path, *, chat_template: str | None = TEMPLATE) -> Path:
    """A one-layer GPT-2 with random weights and a word-level tokenizer, saved to `directory`.

    It has no end-of-sequence token, so it always writes `max_new_tokens` tokens.
    """
    torch.manual_seed(0)
    vocab = {word: index for index, word in enumerate(("[PAD]", "[UNK]", *WORDS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]"
    )
    tokenizer.chat_template = chat_template
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=CONTEXT,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=None,
        eos_token_id=None,
    )
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("tiny-gpt2"))


def generator(
    path: Path,
    build_messages: Callable[[GenerationRequest], list[dict[str, str]]] = plain_messages,
    **overrides: Any,
) -> LocalModelGenerator:
    return LocalModelGenerator(
        LocalModelSettings(path=path, **overrides), build_messages=build_messages
    )


async def collect(model: Generator, req: GenerationRequest | None = None) -> list[str]:
    async with asyncio.timeout(HANG), aclosing(await model.open(req or plain_request())) as stream:
        assert stream.answered_by == "local"
        return [piece async for piece in stream]


def generating() -> bool:
    return any(thread.name == THREAD for thread in threading.enumerate())


async def test_it_streams_the_reply_word_by_word(model_dir: Path) -> None:
    async with generator(model_dir, max_new_tokens=16) as model:
        checked: Generator = model
        assert checked.name == "local"
        torch.manual_seed(1)
        pieces = await collect(model)
        torch.manual_seed(1)
        again = await collect(model)
    assert len(pieces) >= 8
    assert all(piece.strip() for piece in pieces)
    words = "".join(pieces).split()
    assert 8 <= len(words) <= 16
    assert set(words) <= set(WORDS)  # decoded tokens, special tokens dropped
    assert again == pieces  # one generation at a time: a fixed seed gives the same reply
    assert not generating()


async def test_the_event_loop_keeps_running_while_it_generates(model_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.005)

    async with generator(model_dir, max_new_tokens=200) as model, asyncio.TaskGroup() as tasks:
        ticker = tasks.create_task(tick())
        arrivals: list[float] = []
        async with asyncio.timeout(HANG), aclosing(await model.open(plain_request())) as stream:
            async for _ in stream:
                arrivals.append(loop.time())
        ticker.cancel()
    first, last = arrivals[0], arrivals[-1]
    during = [t for t in ticks if first <= t <= last]
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert len(arrivals) >= 100
    # Run on the loop, generation would leave no tick between its first and last piece.
    # A full garbage collection on the generation thread can hold the interpreter for a
    # few tenths of a second (a big heap), so the longest gap is bounded loosely.
    assert len(during) >= 20, f"the loop ticked {len(during)} times in {last - first:.2f} s"
    assert max(gaps) < (last - first) / 2


async def test_closing_the_stream_stops_the_generation(model_dir: Path) -> None:
    async with generator(model_dir, max_new_tokens=CONTEXT) as model:
        started = time.perf_counter()
        async with asyncio.timeout(HANG), aclosing(await model.open(plain_request())) as stream:
            first = await anext(stream.pieces)
            assert generating()
        stopped = time.perf_counter() - started
        assert first.strip()
        assert not generating()  # closing waited for the thread
        # A thousand tokens take seconds; the first and the stop take a fraction of one.
        assert stopped < 1.0
        async with asyncio.timeout(HANG), aclosing(await model.open(plain_request())) as stream:
            assert await anext(stream.pieces)  # the model is free for the next turn
        assert not generating()


async def test_cancelling_the_consumer_stops_the_generation(model_dir: Path) -> None:
    async with generator(model_dir, max_new_tokens=CONTEXT) as model:
        got_first = asyncio.Event()

        async def consume() -> None:
            async with aclosing(await model.open(plain_request())) as stream:
                async for _ in stream:
                    got_first.set()

        async with asyncio.timeout(HANG), asyncio.TaskGroup() as tasks:
            consumer = tasks.create_task(consume())
            await got_first.wait()
            started = time.perf_counter()
            consumer.cancel()
        assert consumer.cancelled()
        assert time.perf_counter() - started < 1.0
        assert not generating()


async def test_a_second_stream_waits_its_turn_within_the_first_token_timeout(
    model_dir: Path,
) -> None:
    async with generator(model_dir, max_new_tokens=CONTEXT, first_token_timeout_s=1.0) as model:
        async with asyncio.timeout(HANG), aclosing(await model.open(plain_request())):
            # The second waits for the model, past its first-token timeout.
            with pytest.raises(GeneratorUnavailable, match="local: no first token in time"):
                await collect(model)
        assert not generating()


async def test_without_a_chat_template_it_joins_role_lines(tmp_path: Path) -> None:
    async with generator(build(tmp_path, chat_template=None), max_new_tokens=8) as model:
        words = "".join(await collect(model)).split()
    assert 4 <= len(words) <= 8
    assert set(words) <= set(WORDS)


async def test_a_failing_chat_template_is_unavailable(tmp_path: Path) -> None:
    broken = build(tmp_path, chat_template="{{ raise_exception('no template for this') }}")
    async with generator(broken) as model:
        with pytest.raises(GeneratorUnavailable, match=r"local: generation failed \(\w+\)"):
            await collect(model)
    assert not generating()


async def test_a_prompt_longer_than_the_context_is_unavailable(model_dir: Path) -> None:
    async with generator(model_dir) as model:
        with pytest.raises(GeneratorUnavailable, match="model's context 1024"):
            await collect(model, plain_request(" ".join(["parcel"] * CONTEXT)))


async def test_no_first_token_in_time_is_unavailable(model_dir: Path) -> None:
    async with generator(model_dir, first_token_timeout_s=1e-6) as model:
        with pytest.raises(GeneratorUnavailable, match="no first token in time"):
            await collect(model)
    assert not generating()


@pytest.mark.parametrize("where", ["missing", "empty"])
async def test_a_path_without_a_model_is_a_config_error(tmp_path: Path, where: str) -> None:
    path = tmp_path / "nothing-here"
    if where == "empty":
        path.mkdir()
    with pytest.raises(ConfigError, match=r"no model at .*save_pretrained"):
        async with generator(path):
            pass


async def test_it_must_be_entered_before_streaming(model_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="not entered"):
        await collect(generator(model_dir))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"first_token_timeout_s": float("inf")}, "first_token_timeout_s"),
        ({"total_timeout_s": 0.0}, "total_timeout_s"),
        ({"temperature": 3.0}, "temperature"),
        ({"device": "teapot"}, "device"),
    ],
)
def test_settings_refuse_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalModelSettings(path=Path("unused"), **overrides)


async def test_heartline_serve_answers_with_a_local_model(model_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, port=0, emotion_model="lexicon", generator="local",
        local_model=model_dir, first_token_timeout=20.0,
    )  # fmt: skip
    async with embedded(settings) as running:
        assert running.gateway is not None
        assert running.authority is not None
        async with connect(running.gateway.url) as ws:
            await ws.send(json.dumps({"type": "hello", "token": running.authority.issue("a")}))
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(json.dumps({"type": "user_message", "id": "t1", "text": "hello"}))
            async with asyncio.timeout(HANG):
                while (message := json.loads(await ws.recv()))["type"] != "reply_end":
                    pass
    assert message["generator"] == "local"
    assert message["text"]
