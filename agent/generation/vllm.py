"""The vLLM generator: chat completions streamed from vLLM's OpenAI-compatible server.

`VllmSettings.base_url` is the server's URL as OpenAI clients take it, with or without
`/v1` (`http://gpu:8000`, `http://gpu:8000/v1/`), or under a proxy's path prefix
(`http://proxy/llm/v1`); it is normalised once, to the root without `/v1`.
`VllmGenerator` POSTs `<root>/v1/chat/completions` with `stream: true` and
`stream_options.include_usage`, and yields the content deltas of the
server-sent events (`agent.generation.sse`) as they arrive. It owns one pooled
`httpx.AsyncClient` for its lifetime (`async with`).

Errors, by when they happen:

- Before the first token (connection refused or timed out, an HTTP error
  status, an error event, a stream that ends or stalls before any text): the
  request is retried up to `retries` times with a short jittered backoff, then
  `GeneratorUnavailable`. Nothing reached the user, so another generator may
  answer. A 4xx other than 408 and 429 is the request's fault: not retried.
- After the first token (an error event, a stream cut before `data: [DONE]`,
  a silence longer than `between_tokens_timeout_s`, the total deadline):
  `GeneratorBroke`, never retried - the user already has part of a reply.
- The circuit breaker (`agent.generation.breaker`) counts calls that failed
  through the server's fault; once open, `stream` raises
  `GeneratorUnavailable("vllm: circuit open")` at once without touching the
  network, until a trial call succeeds after `breaker_reset_s`.

Timeouts: `connect_timeout_s` (httpx, per connection), `first_token_timeout_s`
(per attempt, from sending the request to the first non-empty text),
`between_tokens_timeout_s` (the longest silence after the first token) and
`total_timeout_s` (the whole call, retries and the consumer's own pace included).
Each is applied with `asyncio.timeout_at` around one await, never across a
`yield`, so no timer outlives a step or fires into the consumer.

Cancellation: cancelling the consuming task, or closing the iterator, closes
the HTTP response. The connection is dropped (it is not returned to the pool
half-read), and vLLM aborts a request whose client disconnected.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from agent.errors import ConfigError, GeneratorBroke, GeneratorUnavailable
from agent.generation.base import GenerationRequest, MessageBuilder
from agent.generation.breaker import Admission, BreakerState, CircuitBreaker
from agent.generation.checks import require_positive, require_temperature
from agent.generation.sse import DONE, SseParser, StreamError, Usage, decode_chunk

__all__ = ["VllmGenerator", "VllmSettings"]

_log = structlog.get_logger(__name__)

_PATH: Final = "/v1/chat/completions"
# Statuses worth another try: the server is busy, restarting or overloaded.
_RETRYABLE_4XX: Final = frozenset({408, 429})
# How much of an error body to read; vLLM's are a few hundred bytes.
_MAX_ERROR_BODY: Final = 64 * 1024
# After `data: [DONE]`, how long to wait for the end of the response so the
# connection goes back to the pool (vLLM ends it at once).
_DRAIN_TIMEOUT_S: Final = 0.5
_KEEPALIVE_S: Final = 4.0


@dataclass(frozen=True, slots=True, kw_only=True)
class VllmSettings:
    """Where the vLLM server is, what to ask it, and how long to wait for it."""

    base_url: str = "http://127.0.0.1:8000"  # with or without /v1; stored without
    model: str
    api_key: str | None = field(default=None, repr=False)  # `vllm serve --api-key`
    max_tokens: int = 256  # sent as `max_completion_tokens`
    temperature: float = 0.7
    # Timeouts (seconds)
    connect_timeout_s: float = 2.0
    first_token_timeout_s: float = 5.0
    between_tokens_timeout_s: float = 10.0
    total_timeout_s: float = 120.0
    # Limits
    retries: int = 2  # extra attempts, before the first token only
    retry_backoff_s: float = 0.1  # first pause; doubles with each retry, jittered
    pool_size: int = 32  # connections kept to the server (one per concurrent stream)
    # Circuit breaker
    breaker_failures: int = 5  # consecutive failed calls that open it
    breaker_reset_s: float = 30.0  # open this long, then one trial call

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"vllm base_url must start with http:// or https://, got {self.base_url!r};"
                " use the address `vllm serve` listens on, e.g. http://127.0.0.1:8000"
            )
        object.__setattr__(self, "base_url", _server_root(self.base_url))
        if not self.model:
            raise ConfigError("vllm model is empty; set it to the model `vllm serve` was given")
        require_positive(
            "vllm",
            {
                "connect_timeout_s": self.connect_timeout_s,
                "first_token_timeout_s": self.first_token_timeout_s,
                "between_tokens_timeout_s": self.between_tokens_timeout_s,
                "total_timeout_s": self.total_timeout_s,
                "breaker_reset_s": self.breaker_reset_s,
                "max_tokens": self.max_tokens,
                "pool_size": self.pool_size,
                "breaker_failures": self.breaker_failures,
            },
        )
        if self.retries < 0 or not (
            self.retry_backoff_s >= 0 and math.isfinite(self.retry_backoff_s)
        ):
            raise ConfigError("vllm retries and retry_backoff_s must be >= 0; use 2 and 0.1")
        require_temperature("vllm", self.temperature)


def _server_root(url: str) -> str:
    """`url` without trailing slashes and `/v1`: the root `_PATH` is appended to."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith(_PATH) or path.endswith(_PATH.removeprefix("/v1")):
        raise ConfigError(
            f"vllm base_url {url!r} is the chat completions endpoint; give the server's URL"
            " (http://host:8000 or http://host:8000/v1): the client adds the endpoint"
        )
    root = parts._replace(path=path.removesuffix("/v1"))
    return urllib.parse.urlunsplit(root)


class _Outcome(enum.Enum):
    """What a call says about the server, for the circuit breaker."""

    UNKNOWN = "unknown"  # cancelled before it told anything
    HEALTHY = "healthy"  # it answered (a token, or a refusal of a bad request)
    FAILED = "failed"  # it failed: unreachable, 5xx, timed out, broke


class _Failure(Exception):
    """Why one attempt failed; translated to GeneratorUnavailable or GeneratorBroke."""

    def __init__(self, reason: str, *, retryable: bool = True, server_fault: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.server_fault = server_fault


class VllmGenerator:
    """Streams replies from a vLLM server; an async context manager owning the HTTP pool.

    Reusable (enter, leave, enter again), not reentrant. `last_usage` holds the
    token counts of the last completed stream; `on_usage` is called with them.
    """

    name = "vllm"

    def __init__(
        self,
        settings: VllmSettings,
        *,
        build_messages: MessageBuilder,
        on_usage: Callable[[Usage], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._build_messages = build_messages
        self._on_usage = on_usage
        self._transport = transport
        self._clock = clock
        self._breaker = CircuitBreaker(
            failures_to_open=settings.breaker_failures, reset_after=settings.breaker_reset_s
        )
        self._client: httpx.AsyncClient | None = None
        self.last_usage: Usage | None = None

    @property
    def settings(self) -> VllmSettings:
        return self._settings

    @property
    def circuit(self) -> BreakerState:
        """The circuit breaker's state now (for health probes and metrics)."""
        return self._breaker.state(self._clock())

    async def __aenter__(self) -> Self:
        if self._client is not None:
            raise RuntimeError("VllmGenerator is already entered; it is not reentrant")
        s = self._settings
        headers = {"accept": "text/event-stream"}
        if s.api_key:
            headers["authorization"] = f"Bearer {s.api_key}"
        self._client = httpx.AsyncClient(
            base_url=s.base_url,
            headers=headers,
            # Only the connect timeout is httpx's; the others are deadlines at the call site.
            timeout=httpx.Timeout(None, connect=s.connect_timeout_s),
            # Idle connections are dropped before uvicorn's 5 s keep-alive would drop them.
            limits=httpx.Limits(
                max_connections=s.pool_size,
                max_keepalive_connections=s.pool_size,
                keepalive_expiry=_KEEPALIVE_S,
            ),
            transport=self._transport,
            trust_env=False,  # the environment is read at the CLI edge, not here
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """Yield the reply's text as vLLM produces it.

        Raises `GeneratorUnavailable` before the first piece, `GeneratorBroke`
        after it (see the module docstring). Safe to cancel at any point:
        cancelling the consumer or closing the iterator closes the HTTP stream.
        """
        client = self._client
        if client is None:
            raise RuntimeError("enter VllmGenerator (`async with`) before streaming")
        log = _log.bind(session_id=request.session_id, turn_id=request.turn_id)
        admission = self._breaker.admit(self._clock())
        if admission is None:
            log.warning("vllm.circuit_open")
            raise GeneratorUnavailable("vllm: circuit open")
        outcome = _Outcome.UNKNOWN
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._settings.total_timeout_s
        try:
            body = self._body(request)
            try:
                upstream, first, attempts = await self._open(client, body, deadline, log)
            except _Failure as exc:
                outcome = _Outcome.FAILED if exc.server_fault else _Outcome.HEALTHY
                raise GeneratorUnavailable(f"vllm: {exc.reason}") from exc
            outcome = _Outcome.HEALTHY
            first_token_ms = round((loop.time() - started) * 1000)
            try:
                if first is not None:
                    yield first
                    while (text := await self._next_text(upstream, deadline)) is not None:
                        yield text
                await upstream.drain(min(deadline, loop.time() + _DRAIN_TIMEOUT_S))
            except _Failure as exc:
                outcome = _Outcome.FAILED
                log.warning("vllm.stream_broke", reason=exc.reason)
                raise GeneratorBroke(f"vllm: {exc.reason} after the first token") from exc
            finally:
                await upstream.aclose()
            self._record_usage(upstream.usage)
            log.info(
                "vllm.stream_done",
                attempts=attempts,
                first_token_ms=first_token_ms,
                duration_ms=round((loop.time() - started) * 1000),
                finish_reason=upstream.finish_reason,
                prompt_tokens=upstream.usage.prompt_tokens if upstream.usage else None,
                completion_tokens=upstream.usage.completion_tokens if upstream.usage else None,
            )
        finally:
            self._settle(admission, outcome, log)

    async def _open(
        self,
        client: httpx.AsyncClient,
        body: dict[str, object],
        deadline: float,
        log: FilteringBoundLogger,
    ) -> tuple[_Upstream, str | None, int]:
        """Send the request and read up to its first text, retrying; raise the last `_Failure`."""
        s = self._settings
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            upstream = _Upstream(client, body)
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + s.first_token_timeout_s)):
                    first = await upstream.start()
            except TimeoutError as exc:
                failure = _Failure(
                    "total timeout" if loop.time() >= deadline else "no first token in time"
                )
                failure.__cause__ = exc
            except _Failure as exc:
                failure = exc
            except BaseException:
                await upstream.aclose()
                raise
            else:
                return upstream, first, attempt
            await upstream.aclose()
            log.warning("vllm.attempt_failed", attempt=attempt, reason=failure.reason)
            pause = s.retry_backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            if not failure.retryable or attempt > s.retries or loop.time() + pause >= deadline:
                raise failure
            await asyncio.sleep(pause)

    async def _next_text(self, upstream: _Upstream, deadline: float) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            step = min(deadline, loop.time() + self._settings.between_tokens_timeout_s)
            async with asyncio.timeout_at(step):
                return await upstream.next_text()
        except TimeoutError as exc:
            reason = "total timeout" if loop.time() >= deadline else "no token in time"
            raise _Failure(reason) from exc

    def _body(self, request: GenerationRequest) -> dict[str, object]:
        s = self._settings
        return {
            "model": s.model,
            "messages": self._build_messages(request),
            "max_completion_tokens": s.max_tokens,
            "temperature": s.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def _record_usage(self, usage: Usage | None) -> None:
        if usage is None:
            return
        self.last_usage = usage
        if self._on_usage is not None:
            self._on_usage(usage)

    def _settle(self, admission: Admission, outcome: _Outcome, log: FilteringBoundLogger) -> None:
        now = self._clock()
        before = self._breaker.state(now)
        if outcome is _Outcome.HEALTHY:
            self._breaker.record_success(admission)
        elif outcome is _Outcome.FAILED:
            self._breaker.record_failure(admission, now)
        else:
            self._breaker.release(admission)
        after = self._breaker.state(now)
        if after is not before:
            log.warning("vllm.circuit_changed", state=after.value, was=before.value)


class _Upstream:
    """One streaming HTTP response and the events read from it so far."""

    def __init__(self, client: httpx.AsyncClient, body: dict[str, object]) -> None:
        self._client = client
        self._body = body
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._parser = SseParser()
        self._events: deque[str] = deque()
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    async def start(self) -> str | None:
        """Send the request; return the first text, or None if it ended without any."""
        try:
            response = await self._client.send(
                self._client.build_request("POST", _PATH, json=self._body), stream=True
            )
        except httpx.HTTPError as exc:
            raise _Failure(f"request failed: {type(exc).__name__}") from exc
        self._response = response
        if response.status_code != httpx.codes.OK:
            raise await self._refusal(response)
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise _Failure("the response is not an event stream", retryable=False)
        self._chunks = response.aiter_bytes()
        return await self.next_text()

    async def next_text(self) -> str | None:
        """The next non-empty text; None once `data: [DONE]` arrived."""
        while not self.done:
            item = decode_chunk(await self._next_event())
            if item is DONE:
                self.done = True
            elif isinstance(item, StreamError):
                raise _error_event(item)
            else:
                self.finish_reason = item.finish_reason or self.finish_reason
                self.usage = item.usage or self.usage
                if item.text:
                    return item.text
        return None

    async def drain(self, deadline: float) -> None:
        """Read to the end of the response, so its connection can go back to the pool."""
        if self._chunks is None:
            return
        try:
            async with asyncio.timeout_at(deadline):
                async for _ in self._chunks:
                    pass
        except (TimeoutError, httpx.HTTPError):
            pass  # the connection is closed instead of pooled; the reply is complete

    async def aclose(self) -> None:
        """Close the response; a half-read one takes its connection down with it."""
        chunks, self._chunks = self._chunks, None
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
        if self._response is not None:
            await self._response.aclose()

    async def _next_event(self) -> str:
        assert self._chunks is not None
        while not self._events:
            try:
                chunk = await anext(self._chunks, None)
            except httpx.HTTPError as exc:
                raise _Failure(f"stream broke: {type(exc).__name__}") from exc
            if chunk is None:
                self._events.extend(self._parser.close())
                if not self._events:
                    raise _Failure("stream ended without [DONE]")
            else:
                self._events.extend(self._parser.feed(chunk))
        return self._events.popleft()

    async def _refusal(self, response: httpx.Response) -> _Failure:
        status = response.status_code
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass  # the status says enough
        error = decode_chunk(body.decode("utf-8", errors="replace"))
        kind = ""
        if isinstance(error, StreamError) and error.type != "InvalidChunk":
            kind = f" {error.type}"
            _log.debug("vllm.refused", status=status, detail=error.message[:500])
        retryable = status >= 500 or status in _RETRYABLE_4XX
        return _Failure(f"HTTP {status}{kind}", retryable=retryable, server_fault=retryable)


def _error_event(error: StreamError) -> _Failure:
    """An error event in the stream; one with a 4xx code (not 408/429) is the request's fault."""
    code = error.code
    request_fault = code is not None and 400 <= code < 500 and code not in _RETRYABLE_4XX
    _log.debug("vllm.error_event", type=error.type, code=code, detail=error.message[:500])
    suffix = f" {code}" if code is not None else ""
    return _Failure(
        f"error event {error.type}{suffix}",
        retryable=not request_fault,
        server_fault=not request_fault,
    )
