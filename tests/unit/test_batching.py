"""The micro-batcher under concurrency, with model doubles that implement `EmotionModel`."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from agent.emotion.base import EmotionModel
from agent.emotion.batching import BatchSettings, MicroBatcher
from agent.emotion.lexicon import LexiconRecognizer
from agent.errors import StageError
from agent.values import EmotionReading


class RecordingModel:
    """Reads with the lexicon, slowly, and records every batch and the thread it ran on."""

    name = "recording"

    def __init__(self, *, delay: float = 0.0, fail_on: str | None = None) -> None:
        self._lexicon = LexiconRecognizer()
        self._delay = delay
        self._fail_on = fail_on
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()
        self.started = threading.Event()

    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        self.started.set()
        self.batches.append(list(texts))
        self.threads.add(threading.get_ident())
        if self._delay:
            time.sleep(self._delay)
        if self._fail_on is not None and self._fail_on in texts:
            raise RuntimeError("model exploded")
        return [self._lexicon.read(text) for text in texts]


class ShortModel(RecordingModel):
    def predict(self, texts: Sequence[str]) -> list[EmotionReading]:
        return super().predict(texts)[:-1]


def test_doubles_are_emotion_models() -> None:
    model: EmotionModel = RecordingModel()
    assert model.name == "recording"


async def test_fifty_concurrent_reads_share_few_batches() -> None:
    model = RecordingModel(delay=0.01)
    texts = [f"I am furious about order {n}" for n in range(50)]
    async with MicroBatcher(model) as batcher:
        results = await asyncio.gather(*(batcher.read_batch([text]) for text in texts))
    assert [len(r) for r in results] == [1] * 50
    assert all(r[0].dominant == "anger" for r in results)
    assert sum(len(b) for b in model.batches) == 50
    assert len(model.batches) <= 4
    assert max(len(b) for b in model.batches) <= 32
    assert sorted(t for b in model.batches for t in b) == sorted(texts)


async def test_a_lone_read_is_answered_off_the_event_loop() -> None:
    model = RecordingModel()
    async with MicroBatcher(model) as batcher:
        async with asyncio.timeout(1):
            (reading,) = await batcher.read_batch(["thank you so much!"])
    assert reading.dominant == "gratitude"
    assert model.batches == [["thank you so much!"]]
    assert threading.get_ident() not in model.threads


async def test_readings_come_back_in_order_and_long_calls_are_split() -> None:
    model = RecordingModel()
    texts = [("I am so happy" if n % 2 else "this is awful, I hate it") for n in range(70)]
    async with MicroBatcher(model, settings=BatchSettings(max_batch=32)) as batcher:
        readings = await batcher.read_batch(texts)
        assert await batcher.read_batch([]) == []
    expected = [LexiconRecognizer().read(text).dominant for text in texts]
    assert [r.dominant for r in readings] == expected
    assert max(len(b) for b in model.batches) <= 32
    assert batcher.name == "recording"


async def test_a_failing_model_fails_its_callers_and_the_batcher_goes_on() -> None:
    model = RecordingModel(fail_on="boom")
    async with MicroBatcher(model) as batcher:
        with pytest.raises(StageError) as failed:
            await batcher.read_batch(["boom"])
        assert failed.value.stage == "emotion"
        assert isinstance(failed.value.__cause__, RuntimeError)
        (reading,) = await batcher.read_batch(["I love it"])
    assert reading == LexiconRecognizer().read("I love it")


async def test_a_failed_batch_fails_only_its_own_callers() -> None:
    model = RecordingModel(delay=0.02, fail_on="boom")
    async with MicroBatcher(model) as batcher:
        first = asyncio.ensure_future(batcher.read_batch(["boom"]))
        await asyncio.to_thread(model.started.wait, 1.0)
        # These arrive while the failing batch runs, so they form the next batch.
        later = await asyncio.gather(*(batcher.read_batch([f"fine {n}"]) for n in range(5)))
        with pytest.raises(StageError):
            await first
    assert [len(r) for r in later] == [1] * 5
    assert model.batches[0] == ["boom"]


async def test_a_wrong_number_of_readings_is_an_error() -> None:
    async with MicroBatcher(ShortModel()) as batcher:
        with pytest.raises(StageError, match="readings"):
            await batcher.read_batch(["one", "two"])


async def test_a_cancelled_caller_does_not_break_the_batch_for_others() -> None:
    model = RecordingModel(delay=0.05)
    async with MicroBatcher(model) as batcher:
        blocker = asyncio.ensure_future(batcher.read_batch(["first"]))
        await asyncio.to_thread(model.started.wait, 1.0)
        doomed = asyncio.ensure_future(batcher.read_batch(["doomed"]))
        kept = asyncio.ensure_future(batcher.read_batch(["I am so grateful"]))
        await asyncio.sleep(0.005)
        doomed.cancel()
        (reading,) = await kept
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await doomed
    assert reading.dominant == "gratitude"
    assert all("doomed" not in batch for batch in model.batches)


async def test_callers_wait_when_the_queue_is_full() -> None:
    model = RecordingModel(delay=0.01)
    settings = BatchSettings(max_batch=2, max_queued=2)
    async with MicroBatcher(model, settings=settings) as batcher:
        results = await asyncio.gather(*(batcher.read_batch([f"t{n}"]) for n in range(12)))
    assert len(results) == 12
    assert sum(len(b) for b in model.batches) == 12
    assert max(len(b) for b in model.batches) <= 2


async def test_leaving_fails_waiting_reads_and_refuses_new_ones() -> None:
    model = RecordingModel(delay=0.05)
    batcher = MicroBatcher(model)
    async with batcher:
        running = asyncio.ensure_future(batcher.read_batch(["first"]))
        await asyncio.to_thread(model.started.wait, 1.0)
        waiting = asyncio.ensure_future(batcher.read_batch(["second"]))
        await asyncio.sleep(0)
    assert len(await running) == 1  # the batch in progress finishes
    with pytest.raises(StageError, match="closed"):
        await waiting
    with pytest.raises(RuntimeError, match="not running"):
        await batcher.read_batch(["late"])
    async with batcher:  # reusable
        assert len(await batcher.read_batch(["again"])) == 1


async def test_not_reentrant() -> None:
    async with MicroBatcher(RecordingModel()) as batcher:
        with pytest.raises(RuntimeError, match="already running"):
            await batcher.__aenter__()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        BatchSettings(max_batch=0)
    with pytest.raises(ValueError, match="max_wait"):
        BatchSettings(max_wait=-1.0)
