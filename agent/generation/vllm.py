"""The vLLM generator: chat completions streamed from vLLM's OpenAI-compatible server.

`VllmSettings.base_url` is the server's URL as OpenAI clients take it, with or without
`/v1` (`http://gpu:8000`, `http://gpu:8000/v1/`), or under a proxy's path prefix
(`http://proxy/llm/v1`); it is normalised once, to the root without `/v1`.
`VllmGenerator` POSTs `<root>/v1/chat/completions` with `stream: true` and
`stream_options.include_usage`, and yields the content deltas of the
server-sent events (`agent.generation.sse`) as they arrive; deltas that arrive
together (one read: a backlog, a busy loop) are yielded as one piece. It owns one pooled
`aiohttp.ClientSession` for its lifetime (`async with`), a kept-alive connection for each
stream open at once (`max_connections`), and its replies go through
the LLM stream wrapper (`agent.generation.streaming`), which holds the deadlines,
the split between failing before and after the first token, and the circuit breaker.

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
  through the server's fault; once open, `open` raises
  `GeneratorUnavailable("vllm: circuit open")` at once without touching the
  network, until a trial call succeeds after `breaker_reset_s`.

Timeouts: `connect_timeout_s` (aiohttp's, per connection), `first_token_timeout_s`
(per attempt, from sending the request to the first non-empty text; the wrapper's
first-token deadline covers every attempt and its backoff),
`between_tokens_timeout_s` (the longest silence after the first token) and
`total_timeout_s` (the whole call, retries and the consumer's own pace included).
Each is applied with `asyncio.timeout` around one await, never across a
`yield`, so no timer outlives a step or fires into the consumer.

Cancellation: cancelling the consuming task, or closing the stream, closes
the HTTP response. The connection is dropped (it is not returned to the pool
half-read), and vLLM aborts a request whose client disconnected. A response read
to its end (`data: [DONE]`, then the end of the body) returns its connection to the pool.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

import aiohttp
import structlog
from structlog.typing import FilteringBoundLogger

from agent.errors import ConfigError
from agent.generation.base import GenerationRequest, MessageBuilder, ReplyStream
from agent.generation.breaker import BreakerState, CircuitBreaker
from agent.generation.checks import require_positive, require_temperature
from agent.generation.sse import DONE, SseParser, StreamError, StreamItem, Usage, decode_chunk
from agent.generation.streaming import BackendFailure, LlmGenerator, StreamDeadlines

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
# Idle connections are dropped before uvicorn's 5 s keep-alive would drop them.
_KEEPALIVE_S: Final = 4.0
# The wrapper's first-token deadline is this much longer than every attempt and
# backoff together, so an attempt's own timeout (and its reason) comes first.
_FIRST_TOKEN_MARGIN_S: Final = 0.25


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
    # Streams open to the server at once, a connection each; None: no cap of the client's
    # own, since admission bounds the turns in flight and vLLM queues what it cannot run
    # yet. A cap below the turns in flight makes turns wait for a connection here, unseen
    # by vLLM's scheduler and counted against their first-token deadline.
    max_connections: int | None = None
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
                "breaker_failures": self.breaker_failures,
            },
        )
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError(
                f"vllm max_connections must be at least 1, got {self.max_connections};"
                " leave it unset for no cap of the client's own"
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


def _deadlines(s: VllmSettings) -> StreamDeadlines:
    """The wrapper's deadlines: the first token's covers every attempt and its backoff."""
    attempts = s.first_token_timeout_s * (s.retries + 1)
    backoffs = s.retry_backoff_s * (2**s.retries - 1)
    first_token_s = attempts + backoffs + _FIRST_TOKEN_MARGIN_S
    return StreamDeadlines(
        first_token_s=min(first_token_s, s.total_timeout_s),
        between_tokens_s=s.between_tokens_timeout_s,
        total_s=s.total_timeout_s,
    )


class _Failure(BackendFailure):
    """Why one attempt failed, and whether another attempt may do better."""

    def __init__(self, reason: str, *, retryable: bool = True, server_fault: bool = True) -> None:
        super().__init__(reason, server_fault=server_fault)
        self.retryable = retryable


class VllmGenerator:
    """Streams replies from a vLLM server; an async context manager owning the HTTP pool.

    Reusable (enter, leave, enter again), not reentrant. `open` starts a reply through
    the stream wrapper; `pieces` is the raw HTTP side the wrapper reads. `last_usage`
    holds the token counts of the last completed stream; `on_usage` is called with them.
    """

    name = "vllm"

    def __init__(
        self,
        settings: VllmSettings,
        *,
        build_messages: MessageBuilder,
        on_usage: Callable[[Usage], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._build_messages = build_messages
        self._on_usage = on_usage
        self._url = settings.base_url + _PATH
        self._breaker = CircuitBreaker(
            failures_to_open=settings.breaker_failures, reset_after=settings.breaker_reset_s
        )
        self._clock = clock
        self._llm = LlmGenerator(self, _deadlines(settings), breaker=self._breaker, clock=clock)
        self._session: aiohttp.ClientSession | None = None
        self.last_usage: Usage | None = None

    @property
    def settings(self) -> VllmSettings:
        return self._settings

    @property
    def circuit(self) -> BreakerState:
        """The circuit breaker's state now (for health probes and metrics)."""
        return self._breaker.state(self._clock())

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("VllmGenerator is already entered; it is not reentrant")
        s = self._settings
        headers = {"accept": "text/event-stream"}
        if s.api_key:
            headers["authorization"] = f"Bearer {s.api_key}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=s.max_connections or 0, keepalive_timeout=_KEEPALIVE_S
            ),
            headers=headers,
            # Only connecting is timed by aiohttp; the other deadlines are at the call site.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout_s),
            trust_env=False,  # the environment is read at the CLI edge, not here
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def open(self, request: GenerationRequest) -> ReplyStream:
        """Start a reply (see `Generator.open` and the module docstring); safe to cancel."""
        return await self._llm.open(request)

    def pieces(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        """The reply's raw text as vLLM sends it, retried before the first token.

        Raises `BackendFailure` (the last attempt's) when no attempt got a first token;
        closing it closes the HTTP response.
        """
        session = self._session
        if session is None:
            raise RuntimeError("enter VllmGenerator (`async with`) before streaming")
        log = _log.bind(session_id=request.session_id, turn_id=request.turn_id)
        return self._stream(session, self._body(request), log)

    async def _stream(
        self, session: aiohttp.ClientSession, body: dict[str, object], log: FilteringBoundLogger
    ) -> AsyncGenerator[str, None]:
        upstream, first, attempts = await self._start(session, body, log)
        try:
            if first is not None:
                yield first
                while (text := await upstream.next_text()) is not None:
                    yield text
            await upstream.drain(_DRAIN_TIMEOUT_S)
        finally:
            upstream.close()
        self._record_usage(upstream.usage)
        usage = upstream.usage
        log.debug(
            "vllm.completed",
            attempts=attempts,
            finish_reason=upstream.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )

    async def _start(
        self, session: aiohttp.ClientSession, body: dict[str, object], log: FilteringBoundLogger
    ) -> tuple[_Upstream, str | None, int]:
        """Send the request and read up to its first text, retrying; raise the last `_Failure`."""
        s = self._settings
        attempt = 0
        while True:
            attempt += 1
            upstream = _Upstream(session, self._url, body)
            try:
                async with asyncio.timeout(s.first_token_timeout_s):
                    first = await upstream.start()
            except TimeoutError as exc:
                failure = _Failure("no first token in time")
                failure.__cause__ = exc
            except _Failure as exc:
                failure = exc
            except BaseException:
                upstream.close()
                raise
            else:
                return upstream, first, attempt
            upstream.close()
            log.warning("vllm.attempt_failed", attempt=attempt, reason=failure.reason)
            if not failure.retryable or attempt > s.retries:
                raise failure
            await asyncio.sleep(s.retry_backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))

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


class _Upstream:
    """One streaming HTTP response and the events read from it so far."""

    def __init__(self, session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> None:
        self._session = session
        self._url = url
        self._body = body
        self._response: aiohttp.ClientResponse | None = None
        self._ended = False  # the body was read to its end: the connection may be reused
        self._parser = SseParser()
        self._events: deque[str] = deque()
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    async def start(self) -> str | None:
        """Send the request; return the first text, or None if it ended without any."""
        try:
            response = await self._session.post(self._url, json=self._body)
        except aiohttp.ClientError as exc:
            raise _Failure(f"request failed: {type(exc).__name__}") from exc
        self._response = response
        if response.status != 200:
            raise await self._refusal(response)
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise _Failure("the response is not an event stream", retryable=False)
        return await self.next_text()

    async def next_text(self) -> str | None:
        """The next text, with every text already read behind it; None after `data: [DONE]`.

        Deltas that arrived in one read go on as one piece, so a backlog costs one
        event and one frame downstream instead of one per token, and nothing waits
        for more. An error event behind them is raised by the next call.
        """
        text = None
        while text is None and not self.done:
            text = self._take(decode_chunk(await self._next_event()))
        if text is None:
            return None
        pieces = [text]
        while self._events and not self.done:
            item = decode_chunk(self._events[0])
            if isinstance(item, StreamError):
                break
            self._events.popleft()
            if (more := self._take(item)) is not None:
                pieces.append(more)
        return "".join(pieces)

    def _take(self, item: StreamItem) -> str | None:
        """Take in one event: its text, if it has any."""
        if item is DONE:
            self.done = True
            return None
        if isinstance(item, StreamError):
            raise _error_event(item)
        self.finish_reason = item.finish_reason or self.finish_reason
        self.usage = item.usage or self.usage
        return item.text or None

    async def drain(self, within: float) -> None:
        """Read to the end of the response, so its connection can go back to the pool."""
        response = self._response
        if response is None or self._ended:
            return
        try:
            async with asyncio.timeout(within):
                while await response.content.readany():
                    pass
        except (TimeoutError, aiohttp.ClientError):
            return  # the connection is closed instead of pooled; the reply is complete
        self._ended = True

    def close(self) -> None:
        """Let the response go: its connection back to the pool if it was read to its end,
        else closed with it (a half-read response must not be reused)."""
        response, self._response = self._response, None
        if response is None:
            return
        if self._ended:
            response.release()
        else:
            response.close()

    async def _next_event(self) -> str:
        response = self._response
        assert response is not None
        while not self._events:
            try:
                chunk = await response.content.readany()
            except aiohttp.ClientError as exc:
                raise _Failure(f"stream broke: {type(exc).__name__}") from exc
            if not chunk:
                self._ended = True
                self._events.extend(self._parser.close())
                if not self._events:
                    raise _Failure("stream ended without [DONE]")
            else:
                self._events.extend(self._parser.feed(chunk))
        return self._events.popleft()

    async def _refusal(self, response: aiohttp.ClientResponse) -> _Failure:
        status = response.status
        body = bytearray()
        try:
            while len(body) < _MAX_ERROR_BODY:
                chunk = await response.content.read(_MAX_ERROR_BODY - len(body))
                if not chunk:
                    self._ended = True
                    break
                body += chunk
        except aiohttp.ClientError:
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
