"""vLLM in-process (`VllmEngineGenerator`).

The tests of a missing vLLM and of the settings run everywhere. The others load a real
model on a GPU: they run only where vLLM is installed (`pytest.importorskip` in the
engine fixture) and `TEST_VLLM_MODEL` names a small chat model, a Hugging Face id or a
folder::

    export TEST_VLLM_MODEL=Qwen/Qwen2.5-0.5B-Instruct
    .venv/bin/pytest tests/integration/test_vllm_engine.py

(Not `HEARTLINE_TEST_...`: Heartline refuses unknown `HEARTLINE_*` variables, so such a
name would fail every other test that loads the settings in the same run.)
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest
import pytest_asyncio

from agent.errors import ConfigError, GeneratorUnavailable
from agent.generation.vllm_engine import INSTALL_HINT, VllmEngineGenerator, VllmEngineSettings
from tests.support.generation import plain_messages, plain_request
from tests.support.waiting import eventually

MODEL_VARIABLE = "TEST_VLLM_MODEL"
STORY = "Tell me a short story about a lighthouse."
HANG = 120.0  # keeps a broken test from hanging; nothing asserts on it
MAX_MODEL_LEN = 1024

# vLLM, torch and transformers warn about one another on import and start-up; these
# tests check Heartline's code, not theirs.
on_gpu = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(600),  # the first test waits for the model to load
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


# -- everywhere --------------------------------------------------------------


async def test_without_vllm_entering_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` fails, installed or not
    generator = VllmEngineGenerator(
        VllmEngineSettings(model="Qwen/Qwen2.5-0.5B-Instruct"), build_messages=plain_messages
    )
    with pytest.raises(ConfigError, match=re.escape("install heartline[vllm] on a GPU host")):
        async with generator:
            pass
    assert INSTALL_HINT.startswith("install heartline[vllm] on a GPU host")
    with pytest.raises(RuntimeError, match="enter VllmEngineGenerator"):
        await generator.open(plain_request(STORY))


def test_importing_the_module_imports_no_vllm() -> None:
    probe = "import sys, agent.generation.vllm_engine; print('vllm' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "overrides",
    [
        {"model": ""},
        {"max_tokens": 0},
        {"first_token_timeout_s": float("inf")},
        {"gpu_memory_utilization": 1.5},
        {"max_model_len": 128, "max_tokens": 256},
        {"temperature": 3.0},
    ],
    ids=["no model", "no tokens", "endless timeout", "over the GPU", "no room", "too hot"],
)
def test_wrong_settings_say_what_is_wrong(overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {"model": "m"} | overrides
    with pytest.raises(ConfigError, match="vllm-engine"):
        VllmEngineSettings(**values)


def test_engine_options_reach_the_engine_arguments() -> None:
    settings = VllmEngineSettings(
        model="m", max_model_len=2048, engine_options={"enforce_eager": True, "seed": 7}
    )
    arguments = settings.engine_arguments()
    assert arguments["model"] == "m"
    assert arguments["max_model_len"] == 2048
    assert (arguments["enforce_eager"], arguments["seed"]) == (True, 7)
    assert arguments["disable_log_stats"] is True


# -- where vLLM and a GPU are ------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[VllmEngineGenerator]:
    pytest.importorskip("vllm")
    model = os.environ.get(MODEL_VARIABLE)
    if not model:
        pytest.skip(f"set {MODEL_VARIABLE} to a small chat model to run the vLLM engine tests")
    settings = VllmEngineSettings(
        model=model,
        max_tokens=256,
        temperature=0.0,
        max_model_len=MAX_MODEL_LEN,
        gpu_memory_utilization=0.5,
        enforce_eager=True,  # no CUDA graphs: a faster start
        first_token_timeout_s=30.0,
        between_tokens_timeout_s=10.0,
    )
    async with VllmEngineGenerator(settings, build_messages=plain_messages) as generator:
        yield generator


def unfinished(generator: VllmEngineGenerator) -> int:
    """Requests the engine still holds."""
    count: int = generator.engine.output_processor.get_num_unfinished_requests()
    return count


class TestOnAGpu:
    pytestmark = on_gpu

    async def test_the_reply_streams_in_pieces(self, engine: VllmEngineGenerator) -> None:
        pieces: list[str] = []
        async with asyncio.timeout(HANG):
            stream = await engine.open(plain_request(STORY))
            assert stream.answered_by == "vllm-engine"
            async with aclosing(stream):
                async for piece in stream:
                    pieces.append(piece)
        assert len(pieces) > 1
        assert all(pieces)
        assert "".join(pieces).strip()
        usage = engine.last_usage
        assert usage is not None
        assert usage.prompt_tokens > 0
        assert usage.completion_tokens >= len(pieces)
        assert unfinished(engine) == 0

    @pytest.mark.parametrize("how", ["cancel the task", "close the iterator"])
    async def test_cancelling_aborts_the_request(
        self, engine: VllmEngineGenerator, how: str
    ) -> None:
        long = plain_request("Count from 1 to 1000, one number per line.")
        first = asyncio.Event()

        async def consume() -> None:
            async with aclosing(await engine.open(long)) as stream:
                async for _ in stream:
                    first.set()
                    if how == "close the iterator":
                        return  # leaving `aclosing` closes the stream mid-reply

        task = asyncio.create_task(consume())
        async with asyncio.timeout(HANG):
            await first.wait()
        if how == "cancel the task":
            assert unfinished(engine) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await task
        await eventually(lambda: unfinished(engine) == 0, within=5.0)

    async def test_a_prompt_too_long_for_the_model_is_unavailable(
        self, engine: VllmEngineGenerator
    ) -> None:
        too_long = plain_request("lighthouse " * (4 * MAX_MODEL_LEN))
        with pytest.raises(GeneratorUnavailable, match="vllm-engine"):
            async with asyncio.timeout(HANG):
                await engine.open(too_long)
        assert unfinished(engine) == 0

    async def test_the_engine_serves_turns_side_by_side(self, engine: VllmEngineGenerator) -> None:
        async def reply(text: str) -> str:
            async with aclosing(await engine.open(plain_request(text))) as stream:
                return "".join([piece async for piece in stream])

        async with asyncio.timeout(HANG):
            replies = await asyncio.gather(*(reply(f"Say hello to guest {n}.") for n in range(4)))
        assert all(r.strip() for r in replies)
