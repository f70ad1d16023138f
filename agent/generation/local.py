"""A local generator: a Hugging Face causal LM loaded from a directory, run in-process.

For development on a CPU with a small model (and for tests with a tiny one):
`LocalModelGenerator` loads the tokenizer and the model that `save_pretrained`
wrote to `LocalModelSettings.path` - always with `local_files_only=True`, it
never downloads - and streams replies the way `VllmGenerator` does.

The thread bridge: `model.generate` blocks, so each stream runs it on its own
thread ("heartline-local-generate"). Its streamer decodes the way
`TextIteratorStreamer` does (a `TextStreamer`: prompt skipped, special tokens
dropped, text released at word boundaries, newlines and CJK characters), but
hands each piece to the event loop with `loop.call_soon_threadsafe` onto an
`asyncio.Queue` instead of a blocking `queue.Queue`, so no thread waits per
piece and the loop never blocks. The queue holds at most `max_new_tokens + 3`
items by construction (at most one piece per token, the flush at the end, a
failure, the end marker), so it needs no overflow policy.

Cancellation: cancelling the consuming task, or closing the stream, sets a
`threading.Event` that a `StoppingCriteria` reads after every token, then waits
up to `stop_timeout_s` (off the loop) for the thread to end. Generation stops
within one forward pass; the prompt's forward pass cannot be interrupted. A
thread that outlives the bound is logged and left to finish on its own (it
stops at its next token).

One generation at a time per model: a stream holds the generator's lock from
before its first token until its thread has ended (or `stop_timeout_s` passed
waiting for it), and a second stream waits
for it, the wait counted against `first_token_timeout_s`. That is enough for
one developer on a CPU, and it keeps runs reproducible under a fixed
`torch.manual_seed`; serve real traffic with vLLM.

The replies go through the LLM stream wrapper (`agent.generation.streaming`), which
holds the deadlines and the split between failing before and after the first piece
(the messages never hold the user's words):

- Before the first piece (busy past the first-token timeout, a prompt longer
  than the model's context, a chat template or model error, no text at all):
  `GeneratorUnavailable`.
- After the first piece (a model error, a silence longer than
  `between_tokens_timeout_s`, `total_timeout_s` in all): `GeneratorBroke`.

Loading problems (no model at the path, a model that is not a causal LM, a
device that is not there) are `ConfigError`s raised by `async with`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self

import structlog
import torch
from structlog.typing import FilteringBoundLogger
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

from agent.errors import ConfigError
from agent.generation.base import GenerationRequest, MessageBuilder, ReplyStream
from agent.generation.checks import require_positive, require_temperature
from agent.generation.streaming import BackendFailure, LlmGenerator, StreamDeadlines

__all__ = ["LocalModelGenerator", "LocalModelSettings"]

_log = structlog.get_logger(__name__)

_THREAD_NAME: Final = "heartline-local-generate"


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalModelSettings:
    """Which model directory to load, what to ask of it, and how long to wait for it."""

    path: Path  # the directory `save_pretrained` wrote: config, weights, tokenizer
    max_new_tokens: int = 128  # also capped by the room left in the model's context
    temperature: float = 0.7  # 0 decodes greedily
    device: str = "cpu"  # a torch device: "cpu", "cuda", "cuda:1", "mps"
    # Timeouts (seconds)
    first_token_timeout_s: float = 30.0  # from the call to the first piece, lock wait included
    between_tokens_timeout_s: float = 30.0  # the longest silence after the first piece
    total_timeout_s: float = 600.0  # the whole reply
    stop_timeout_s: float = 5.0  # how long closing a stream waits for its thread to end

    def __post_init__(self) -> None:
        require_positive(
            "local",
            {
                "max_new_tokens": self.max_new_tokens,
                "first_token_timeout_s": self.first_token_timeout_s,
                "between_tokens_timeout_s": self.between_tokens_timeout_s,
                "total_timeout_s": self.total_timeout_s,
                "stop_timeout_s": self.stop_timeout_s,
            },
        )
        require_temperature("local", self.temperature)
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise ConfigError(
                f"local device {self.device!r} is not a torch device; use cpu, cuda or cuda:N"
            ) from exc


class _CausalLM(Protocol):
    """What this module uses of a `PreTrainedModel` with `GenerationMixin`."""

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Loaded:
    model: _CausalLM
    tokenizer: PreTrainedTokenizerBase
    context: int | None  # the model's context in tokens, where its config says


class LocalModelGenerator:
    """Streams replies from a local causal LM; an async context manager owning the model.

    `async with` loads it off the event loop (seconds for a small model on a
    CPU); leaving drops it. Reusable (enter, leave, enter again), not reentrant.
    `open` starts a reply through the stream wrapper; `pieces` is the raw model side
    the wrapper reads.
    """

    name = "local"

    def __init__(self, settings: LocalModelSettings, *, build_messages: MessageBuilder) -> None:
        self._settings = settings
        self._build_messages = build_messages
        self._lock = asyncio.Lock()
        self._loaded: _Loaded | None = None
        self._llm = LlmGenerator(
            self,
            StreamDeadlines(
                first_token_s=settings.first_token_timeout_s,
                between_tokens_s=settings.between_tokens_timeout_s,
                total_s=settings.total_timeout_s,
            ),
        )

    @property
    def settings(self) -> LocalModelSettings:
        return self._settings

    async def __aenter__(self) -> Self:
        if self._loaded is not None:
            raise RuntimeError("LocalModelGenerator is already entered; it is not reentrant")
        # Cancelling this leaves the load to finish on its thread; its result is dropped.
        self._loaded = await asyncio.to_thread(_load, self._settings)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A stream still open keeps what its thread uses until that thread ends.
        self._loaded = None

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """Start a reply (see `Generator.open` and the module docstring); safe to cancel.

        Closing the stream early is the way to stop a reply: it stops the generation
        thread and waits for it, within `stop_timeout_s`.
        """
        return await self._llm.open(request)

    def pieces(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """The reply's raw text as the model produces it, a word or so at a time.

        Waits for the model while another generation holds it. Raises `BackendFailure`
        when the generation fails; closing it stops the generation thread.
        """
        loaded = self._loaded
        if loaded is None:
            raise RuntimeError("LocalModelGenerator is not entered; use `async with` first")
        log = _log.bind(session_id=request.session_id, turn_id=request.turn_id)
        return self._generate(loaded, self._build_messages(request), log)

    async def _generate(
        self, loaded: _Loaded, messages: list[dict[str, str]], log: FilteringBoundLogger
    ) -> AsyncGenerator[str, None]:
        s = self._settings
        if self._lock.locked():
            log.info("local.busy")  # waits for the generation before it
        async with self._lock:
            run = _Run(asyncio.get_running_loop(), loaded, messages, s)
            try:
                while (item := await run.items.get()) is not None:
                    if isinstance(item, _Failed):
                        raise BackendFailure(item.reason) from item.error
                    yield item
            finally:
                if not await run.stop(s.stop_timeout_s):
                    log.warning("local.thread_still_running", waited_s=s.stop_timeout_s)


@dataclass(frozen=True, slots=True)
class _Failed:
    """The generation thread failed; `reason` names the cause, never the text."""

    reason: str
    error: BaseException


class _StopWhenSet(StoppingCriteria):
    """Stops generation at the next token once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        stop = torch.full(
            (input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device
        )
        return stop  # type: ignore[return-value]  # a bool tensor is transformers' BoolTensor


class _LoopStreamer(TextStreamer):
    """`TextStreamer`'s decoding, each piece handed to `post` instead of printed."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, post: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._post = post

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._post(text)


class _Run:
    """One generation on its own thread, its pieces fed to the event loop's queue.

    `items` gets text pieces, at most one `_Failed`, then None (the end).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        loaded: _Loaded,
        messages: list[dict[str, str]],
        settings: LocalModelSettings,
    ) -> None:
        self._loop = loop
        self._loaded = loaded
        self._messages = messages
        self._settings = settings
        self._stopping = threading.Event()
        self.items: asyncio.Queue[str | _Failed | None] = asyncio.Queue()
        self._thread = threading.Thread(target=self._work, name=_THREAD_NAME, daemon=True)
        self._thread.start()

    async def stop(self, within: float) -> bool:
        """Stop the generation and wait up to `within` seconds for its thread; True once ended."""
        self._stopping.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, within)
        return not self._thread.is_alive()

    def _post(self, item: str | _Failed | None) -> None:
        """Hand `item` to the loop; called on the generation thread."""
        try:
            self._loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody will read the rest
            self._stopping.set()

    def _work(self) -> None:
        try:
            inputs, max_new_tokens = self._encode()
            if not self._stopping.is_set():
                self._loaded.model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    streamer=_LoopStreamer(self._loaded.tokenizer, self._post),
                    stopping_criteria=StoppingCriteriaList([_StopWhenSet(self._stopping)]),
                    **_sampling(self._settings.temperature),
                )
        except _PromptTooLong as exc:
            self._post(_Failed(str(exc), exc))
        except Exception as exc:  # whatever the model raises ends this stream only
            self._post(_Failed(f"generation failed ({type(exc).__name__})", exc))
        finally:
            self._post(None)

    def _encode(self) -> tuple[dict[str, torch.Tensor], int]:
        """The prompt's tensors on the model's device, and how many tokens may follow it."""
        tokenizer, context = self._loaded.tokenizer, self._loaded.context
        templated = bool(tokenizer.chat_template)
        if templated:
            prompt = tokenizer.apply_chat_template(
                self._messages, tokenize=False, add_generation_prompt=True
            )
        else:
            prompt = _plain_prompt(self._messages)
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=not templated)
        inputs = {
            key: encoded[key].to(self._settings.device) for key in ("input_ids", "attention_mask")
        }
        room = self._settings.max_new_tokens
        if context is not None:
            prompt_tokens = int(inputs["input_ids"].shape[-1])
            if prompt_tokens >= context:
                raise _PromptTooLong(
                    f"the prompt takes {prompt_tokens} tokens, the model's context {context}"
                )
            room = min(room, context - prompt_tokens)
        return inputs, room


class _PromptTooLong(Exception):
    pass


def _plain_prompt(messages: list[dict[str, str]]) -> str:
    """Messages as `role: content` lines, for a tokenizer without a chat template."""
    lines = [f"{message['role']}: {message['content']}" for message in messages]
    return "\n".join([*lines, "assistant:"])


def _sampling(temperature: float) -> dict[str, Any]:
    if temperature == 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": temperature}


def _load(settings: LocalModelSettings) -> _Loaded:
    """The tokenizer and model at `settings.path`, on `settings.device`; blocks for seconds."""
    path = settings.path
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"no model at {path}: point the local generator at the directory that "
            "`save_pretrained` wrote (config.json, the weights, the tokenizer files); "
            "it never downloads"
        )
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"local device {settings.device!r} is not available; use cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        torch.nn.Module.to(model, device)  # PreTrainedModel's own override is untyped
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot load a causal language model and its tokenizer from {path} onto "
            f"{settings.device} ({type(exc).__name__}): give a directory holding a causal LM "
            "(config.json, the weights) and its tokenizer, as `save_pretrained` writes them"
        ) from exc
    torch.nn.Module.eval(model)
    context = getattr(model.config, "max_position_embeddings", None)
    _log.info("local.loaded", path=str(path), device=settings.device)
    return _Loaded(model, tokenizer, context if isinstance(context, int) else None)
