"""vLLM in-process: the model runs inside Heartline's process, for a single-GPU host.

`VllmEngineGenerator` starts vLLM's asynchronous engine (`vllm.v1.engine.async_llm.AsyncLLM`,
or `vllm.AsyncLLMEngine` where that module is missing) when entered and shuts it down
when left. There is no HTTP hop and no second service to run; the price is that the
model's GPU, its start-up time and its crashes are Heartline's. Where a GPU serves
several Heartline workers, run `vllm serve` once and use `VllmGenerator` instead.

vLLM is an optional extra (`pip install 'heartline[vllm]'`) and is imported lazily, when
the generator is entered; without it entering raises `ConfigError`. Importing this module
never imports vLLM, loads a model or touches a GPU. vLLM has no type stubs, so the
values from it are `Any` here.

Each turn's chat messages (from `build_messages`, as for `VllmGenerator`) are rendered
with the model's own chat template (`apply_chat_template(..., add_generation_prompt=True)`)
and tokenized without adding special tokens: the template already holds them, and a
text prompt would get a second BOS token. The engine streams `RequestOutputKind.DELTA`
outputs; the text of each is the new piece of the reply.

The replies go through the LLM stream wrapper (`agent.generation.streaming`), which
holds the deadlines and the split between failing before and after the first piece:

- Before the first piece (the prompt cannot be rendered or is too long, the engine
  refuses the request or is dead, no first piece within `first_token_timeout_s`):
  `GeneratorUnavailable`. Nothing reached the user, so another generator may answer.
  Nothing is retried: a local engine that failed once fails again.
- After the first piece (the engine fails, a silence longer than
  `between_tokens_timeout_s`, the total deadline): `GeneratorBroke`.

Cancellation: cancelling the consuming task, or closing the stream, closes vLLM's
output stream (which aborts the request) and then aborts the request explicitly by its
id, bounded by `abort_timeout_s`, so its sequence leaves the batch and frees its KV cache
at once.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import secrets
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any, Final, Self

import structlog
from structlog.typing import FilteringBoundLogger

from agent.errors import ConfigError
from agent.generation.base import GenerationRequest, MessageBuilder, ReplyStream
from agent.generation.checks import require_positive, require_temperature
from agent.generation.sse import Usage
from agent.generation.streaming import BackendFailure, LlmGenerator, StreamDeadlines

__all__ = ["INSTALL_HINT", "VllmEngineGenerator", "VllmEngineSettings"]

_log = structlog.get_logger(__name__)

INSTALL_HINT: Final = "install heartline[vllm] on a GPU host (pip install 'heartline[vllm]')"


@dataclass(frozen=True, slots=True, kw_only=True)
class VllmEngineSettings:
    """Which model the in-process engine loads, what to ask it, and how long to wait."""

    model: str  # a Hugging Face id or a local folder
    max_tokens: int = 256
    temperature: float = 0.7
    # Engine (vLLM's `AsyncEngineArgs`)
    gpu_memory_utilization: float = 0.9  # the share of the GPU's memory vLLM may take
    max_model_len: int | None = None  # None: the model's own context length
    dtype: str = "auto"
    enforce_eager: bool = False  # True: no CUDA graphs (faster start, slower decoding)
    log_stats: bool = False  # vLLM's periodic throughput log lines
    engine_options: Mapping[str, Any] = field(default_factory=dict)  # more AsyncEngineArgs
    # Timeouts (seconds)
    first_token_timeout_s: float = 5.0
    between_tokens_timeout_s: float = 10.0
    total_timeout_s: float = 120.0
    abort_timeout_s: float = 2.0  # releasing a cancelled request

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("vllm-engine model is empty; give a Hugging Face id or a folder")
        require_positive(
            "vllm-engine",
            {
                "max_tokens": self.max_tokens,
                "first_token_timeout_s": self.first_token_timeout_s,
                "between_tokens_timeout_s": self.between_tokens_timeout_s,
                "total_timeout_s": self.total_timeout_s,
                "abort_timeout_s": self.abort_timeout_s,
            },
        )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                "vllm-engine gpu_memory_utilization must be in (0, 1], got "
                f"{self.gpu_memory_utilization}; 0.9 leaves room for the emotion model"
            )
        if self.max_model_len is not None and self.max_model_len <= self.max_tokens:
            raise ConfigError(
                f"vllm-engine max_model_len ({self.max_model_len}) must exceed max_tokens "
                f"({self.max_tokens})"
            )
        require_temperature("vllm-engine", self.temperature)

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments of vLLM's `AsyncEngineArgs`."""
        arguments: dict[str, Any] = {
            "model": self.model,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": self.dtype,
            "enforce_eager": self.enforce_eager,
            "disable_log_stats": not self.log_stats,
        }
        if self.max_model_len is not None:
            arguments["max_model_len"] = self.max_model_len
        return arguments | dict(self.engine_options)


@dataclass(frozen=True, slots=True)
class _Vllm:
    """What this module uses of vLLM, imported when the generator is entered."""

    engine_args: Any  # AsyncEngineArgs
    engine_class: Any  # AsyncLLM, or AsyncLLMEngine
    sampling_params: Any  # SamplingParams
    delta: Any  # RequestOutputKind.DELTA


def _import_vllm() -> _Vllm:
    """vLLM's classes; `ConfigError` with the install hint when it is not installed."""
    try:
        vllm = importlib.import_module("vllm")
        arg_utils = importlib.import_module("vllm.engine.arg_utils")
        sampling = importlib.import_module("vllm.sampling_params")
    except ImportError as exc:
        raise ConfigError(f"the in-process vLLM engine needs vLLM: {INSTALL_HINT}") from exc
    engine_class: Any
    try:
        async_llm: ModuleType = importlib.import_module("vllm.v1.engine.async_llm")
        engine_class = async_llm.AsyncLLM
    except (ImportError, AttributeError):
        engine_class = vllm.AsyncLLMEngine
    return _Vllm(
        engine_args=arg_utils.AsyncEngineArgs,
        engine_class=engine_class,
        sampling_params=vllm.SamplingParams,
        delta=sampling.RequestOutputKind.DELTA,
    )


class VllmEngineGenerator:
    """Streams replies from vLLM running in this process; an async context manager.

    Entering imports vLLM and starts the engine: it loads the model onto the GPU and
    blocks the event loop while it does (tens of seconds, as `vllm serve` start-up
    does), so enter it at start-up, before serving. Leaving shuts the engine down.
    Reusable (enter, leave, enter again), not reentrant. `open` starts a reply through
    the stream wrapper; `pieces` is the raw engine side the wrapper reads. `last_usage`
    holds the token counts of the last completed stream; `on_usage` is called with them.
    """

    name = "vllm-engine"

    def __init__(
        self,
        settings: VllmEngineSettings,
        *,
        build_messages: MessageBuilder,
        on_usage: Callable[[Usage], None] | None = None,
    ) -> None:
        self._settings = settings
        self._build_messages = build_messages
        self._on_usage = on_usage
        self._vllm: _Vllm | None = None
        self._engine: Any = None
        self._tokenizer: Any = None
        self._llm = LlmGenerator(
            self,
            StreamDeadlines(
                first_token_s=settings.first_token_timeout_s,
                between_tokens_s=settings.between_tokens_timeout_s,
                total_s=settings.total_timeout_s,
            ),
        )
        self.last_usage: Usage | None = None

    @property
    def settings(self) -> VllmEngineSettings:
        return self._settings

    @property
    def engine(self) -> Any:
        """The running vLLM engine (for its metrics and health); None unless entered."""
        return self._engine

    async def __aenter__(self) -> Self:
        if self._engine is not None:
            raise RuntimeError("VllmEngineGenerator is already entered; it is not reentrant")
        vllm = _import_vllm()
        s = self._settings
        try:
            engine = vllm.engine_class.from_engine_args(vllm.engine_args(**s.engine_arguments()))
        except Exception as exc:
            raise ConfigError(
                f"vllm-engine could not start {s.model!r} ({type(exc).__name__}: {exc}); check"
                " the model name or folder, that a GPU is visible, and gpu_memory_utilization"
            ) from exc
        try:
            tokenizer = engine.get_tokenizer()
            if inspect.isawaitable(tokenizer):  # a coroutine in older vLLM
                tokenizer = await tokenizer
        except BaseException:
            await _shut_down(engine)
            raise
        self._vllm, self._engine, self._tokenizer = vllm, engine, tokenizer
        _log.info("vllm_engine.started", model=s.model)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        engine, self._engine, self._tokenizer = self._engine, None, None
        if engine is not None:
            await _shut_down(engine)

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """Start a reply (see `Generator.open` and the module docstring); safe to cancel."""
        return await self._llm.open(request)

    def pieces(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """The reply's raw text as the engine produces it.

        Raises `BackendFailure` when the engine cannot take the request or fails;
        closing it aborts the request in the engine.
        """
        engine, vllm = self._engine, self._vllm
        if engine is None or vllm is None:
            raise RuntimeError("enter VllmEngineGenerator (`async with`) before streaming")
        log = _log.bind(session_id=request.session_id, turn_id=request.turn_id)
        return self._generate(engine, vllm, request, log)

    async def _generate(
        self, engine: Any, vllm: _Vllm, request: GenerationRequest, log: FilteringBoundLogger
    ) -> AsyncGenerator[str, None]:
        if getattr(engine, "errored", False):
            raise BackendFailure("the engine is dead")
        s = self._settings
        try:
            prompt_ids = self._prompt(request)
            params = vllm.sampling_params(
                max_tokens=s.max_tokens, temperature=s.temperature, output_kind=vllm.delta
            )
        except Exception as exc:
            raise BackendFailure(f"prompt failed: {type(exc).__name__}") from exc
        request_id = f"heartline-{secrets.token_hex(8)}"
        outputs = engine.generate({"prompt_token_ids": prompt_ids}, params, request_id)
        ended = False
        completion_tokens = 0
        finish_reason: str | None = None
        try:
            # Read to the end of vLLM's stream, past the output marked `finished`, so that
            # it ends by itself rather than by being closed (which it takes for an abort).
            while (output := await _next_output(outputs)) is not None:
                if not output.outputs:
                    continue
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids or ())
                finish_reason = completion.finish_reason or finish_reason
                if completion.text:
                    yield completion.text
            ended = True
        finally:
            await self._release(engine, outputs, request_id, ended, log)
        prompt_tokens = len(prompt_ids)
        self._record_usage(
            Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
        )
        log.debug(
            "vllm_engine.completed",
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def _prompt(self, request: GenerationRequest) -> list[int]:
        """The turn's messages in the model's chat template, as token ids."""
        tokenizer = self._tokenizer
        rendered = tokenizer.apply_chat_template(
            self._build_messages(request), tokenize=False, add_generation_prompt=True
        )
        if isinstance(rendered, str):
            # The template holds the special tokens; adding them again would double BOS.
            rendered = tokenizer.encode(rendered, add_special_tokens=False)
        return [int(token) for token in rendered]

    async def _release(
        self,
        engine: Any,
        outputs: AsyncGenerator[Any, None],
        request_id: str,
        ended: bool,
        log: FilteringBoundLogger,
    ) -> None:
        """Close the output stream; abort the request unless the stream ended. Bounded."""
        try:
            async with asyncio.timeout(self._settings.abort_timeout_s):
                await outputs.aclose()  # vLLM aborts a request whose stream is closed
                if not ended:
                    await engine.abort(request_id)  # a no-op for a request already gone
        except TimeoutError:
            log.warning("vllm_engine.abort_timeout", request_id=request_id)
        except Exception as exc:
            log.warning("vllm_engine.abort_failed", error=type(exc).__name__)

    def _record_usage(self, usage: Usage) -> None:
        self.last_usage = usage
        if self._on_usage is not None:
            self._on_usage(usage)


async def _next_output(outputs: AsyncGenerator[Any, None]) -> Any:
    """The engine's next output, None at the end; `BackendFailure` when the engine fails."""
    try:
        return await anext(outputs, None)
    except Exception as exc:
        raise BackendFailure(f"engine error: {type(exc).__name__}") from exc


async def _shut_down(engine: Any) -> None:
    """Stop the engine and its background process (`shutdown`, or older vLLM's names)."""
    for method in ("shutdown", "shutdown_background_loop"):
        stop = getattr(engine, method, None)
        if stop is not None:
            result = stop()
            if inspect.isawaitable(result):
                await result
            return
