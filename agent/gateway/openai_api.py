"""The OpenAI-compatible API: `GET /v1/models` and `POST /v1/chat/completions`.

Each request is a turn of its user's conversation (`ChatSessions`), answered by
the same pipeline as `/ws`; this module only translates (`openai_wire`). With an
API key the user is the request's `user` field (a request without one is a
conversation of its own); with a user token it is the token's user.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name this module's local dependencies.

import json
import math
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from agent.errors import BusError, WireError
from agent.gateway.chat_sessions import ChatSessions, ChatUser, HttpBusy
from agent.gateway.credentials import Caller, Credentials
from agent.gateway.http_errors import ApiError, error_body, error_responses
from agent.gateway.openai_wire import MODEL_ID, ChatRequest, Completion, estimate_tokens, model_list
from agent.gateway.roster import Availability

__all__ = ["ChatService", "openai_router"]

_log = structlog.get_logger(__name__)

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_TURN_ERRORS = {"turn_timeout": 504, "unavailable": 503}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatService:
    credentials: Credentials
    sessions: ChatSessions
    workers: Callable[[], Availability]


def _user_of(caller: Caller, request: ChatRequest) -> ChatUser:
    if caller.user_id is not None:
        if request.user is not None and request.user != caller.user_id:
            raise ApiError(
                403,
                f"this token is for user {caller.user_id!r}: leave out `user` or give that one",
                code="forbidden",
                param="user",
            )
        return ChatUser(caller.tenant, caller.user_id)
    return ChatUser(caller.tenant, request.user or f"anonymous-{secrets.token_hex(8)}")


def _turn_text(request: ChatRequest) -> str:
    if request.model != MODEL_ID:
        raise ApiError(
            404,
            f"the model {request.model!r} does not exist; this server serves {MODEL_ID!r}",
            code="model_not_found",
            param="model",
        )
    try:
        return request.turn_text()
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request", param="messages") from exc


def _unavailable(exc: Exception) -> ApiError:
    if isinstance(exc, WireError):
        headers = None
        if exc.retry_after_ms is not None:
            # OpenAI SDKs wait `retry-after-ms` before their own retry; others read Retry-After.
            seconds = str(math.ceil(exc.retry_after_ms / 1000))
            headers = {"Retry-After": seconds, "retry-after-ms": str(exc.retry_after_ms)}
        return ApiError(503, exc.message, code=exc.code, headers=headers)
    if isinstance(exc, HttpBusy):
        return ApiError(503, str(exc), code="busy")
    return ApiError(503, "the service is unavailable; try again shortly", code="unavailable")


def _failed(completion: Completion) -> ApiError:
    error = completion.error or {}
    code = str(error.get("code") or "internal")
    return ApiError(_TURN_ERRORS.get(code, 502), str(error.get("message", "")), code=code)


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def openai_router(service: ChatService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
    user = service.credentials.require_user()

    @router.get(
        "/models", summary="The models this server serves", responses=error_responses(401, 403)
    )
    async def models(_: Annotated[Caller, Depends(user)]) -> dict[str, Any]:
        return model_list()

    @router.post(
        "/chat/completions",
        summary="A turn of the user's conversation, streamed or not",
        response_model=None,
        responses={
            200: {
                "description": "a `chat.completion`, or `chat.completion.chunk` events "
                "when `stream` is true",
                "content": {"application/json": {}, "text/event-stream": {}},
            },
            **error_responses(400, 401, 403, 404, 413, 502, 503, 504),
        },
    )
    async def chat_completions(
        caller: Annotated[Caller, Depends(user)], request: ChatRequest
    ) -> JSONResponse | StreamingResponse:
        """Answer the last message, the user's, as the next turn of their conversation.

        The reply streams as `chat.completion.chunk` events when `stream` is true.
        The `heartline` field (first chunk, last chunk, or the completion) carries
        the emotion reading, the decision and how the reply ended.
        """
        text = _turn_text(request)
        user = _user_of(caller, request)
        if service.workers() is Availability.NONE:
            raise ApiError(
                503, "no worker is available to answer; try again shortly", code="unavailable"
            )
        if (refused := service.sessions.refusal()) is not None:
            raise _unavailable(refused)
        turn_id = f"chatcmpl-{secrets.token_hex(12)}"
        completion = Completion(
            completion_id=turn_id,
            model=request.model,
            session_id="",
            turn_id="",
            prompt_tokens=estimate_tokens(request.prompt_text()),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        if request.stream:
            return StreamingResponse(
                _stream(service.sessions, user, text, completion),
                media_type="text/event-stream",
                headers=_SSE_HEADERS,
            )
        try:
            async with service.sessions.turn(user, text) as turn:
                completion.session_id, completion.turn_id = turn.session_id, turn.turn_id
                async for message in turn.messages:
                    completion.feed(message)
        except (WireError, HttpBusy, BusError) as exc:
            raise _unavailable(exc) from exc
        if completion.error is not None:
            raise _failed(completion)
        return JSONResponse(completion.response())

    return router


async def _stream(
    sessions: ChatSessions, user: ChatUser, text: str, completion: Completion
) -> AsyncIterator[bytes]:
    """The turn's chunks as server-sent events; an error mid-way is an `error` event."""
    try:
        async with sessions.turn(user, text) as turn:
            completion.session_id, completion.turn_id = turn.session_id, turn.turn_id
            async for message in turn.messages:
                for chunk in completion.feed(message):
                    yield _sse(chunk)
    except (WireError, HttpBusy, BusError) as exc:
        error = _unavailable(exc)
        yield _sse(error_body(error.status, error.message, code=error.code, param=None))
    else:
        if completion.error is not None:
            error = _failed(completion)
            yield _sse(error_body(error.status, error.message, code=error.code, param=None))
    yield _sse("[DONE]")
