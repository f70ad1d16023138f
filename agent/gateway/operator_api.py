"""The operator API, for staff with an operator token: live sessions, the handoff queue,
a user's emotional history, and takeover of a session by a person.

A takeover goes to the session's reply topic (the gateway holding the session
stops the bot and tells the customer) and its watch topic (every operator
console), and asks the help desk through the handoff topic. The person's
messages travel the same two topics.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name this module's local dependencies.

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Depends, WebSocket
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from agent import topics
from agent.bus.base import EventBus
from agent.errors import AuthError, BusError, StoreError
from agent.events import AgentMessage, HandoffRequested, Takeover
from agent.gateway.auth import Role, TokenAuthority
from agent.gateway.board import BoardChange, LiveSession
from agent.gateway.credentials import Caller, Credentials
from agent.gateway.http_errors import ApiError, error_responses
from agent.gateway.protocol import encode_text
from agent.gateway.watch import Watch
from agent.privacy.redaction import redact
from memory.sql.timeline import UserTimeline

__all__ = ["HistoryReader", "OperatorService", "operator_router"]

_log = structlog.get_logger(__name__)

CLOSE_UNAUTHORIZED: Final = 1008
CLOSE_BEHIND: Final = 1013

HistoryReader = Callable[[str, str], Awaitable[UserTimeline | None]]
"""A user's timeline by (user id, tenant); None for a user with no history."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorService:
    credentials: Credentials
    authority: TokenAuthority
    bus: EventBus
    watch: Watch
    history: HistoryReader | None
    default_tenant: str


class AgentText(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Hi, I'm Dana."}]}
    )
    text: Annotated[str, Field(min_length=1, max_length=4000)]


def _live(service: OperatorService, session_id: str) -> LiveSession:
    session = service.watch.board.get(session_id)
    if session is None:
        raise ApiError(404, "no live session with this id", code="unknown_session")
    return session


def _timeline_view(timeline: UserTimeline) -> dict[str, Any]:
    return {
        "user_id": timeline.user_id,
        "tenant": timeline.tenant,
        "sessions": [
            {
                "session_id": s.session_id,
                "started_at": s.started_at,
                "last_at": s.last_at,
                "turns": s.turns,
                "mood_group": s.mood,
                "mean_valence": s.mean_valence,
            }
            for s in timeline.sessions
        ],
        "turns": [
            {
                "session_id": p.session_id,
                "seq": p.seq,
                "at": p.at,
                "dominant": p.dominant,
                "valence": p.valence,
                "arousal": p.arousal,
            }
            for p in timeline.points
        ],
    }


async def _publish(
    service: OperatorService, session_id: str, event: Takeover | AgentMessage
) -> None:
    """To the customer's gateway (reply topic) and every operator console (watch topic)."""
    try:
        await service.bus.publish(topics.reply(session_id), event)
        await service.bus.publish(topics.watch(session_id), event)
    except BusError as exc:
        raise ApiError(
            503, "the message could not be delivered; try again", code="unavailable"
        ) from exc


def operator_router(service: OperatorService) -> APIRouter:
    router = APIRouter(prefix="/v1/operator", tags=["operator"])
    staff = service.credentials.require_operator()
    Staff = Annotated[Caller, Depends(staff)]

    @router.get(
        "/sessions",
        summary="Live sessions, the most recently active first",
        responses=error_responses(401, 403),
    )
    async def sessions(_: Staff) -> dict[str, Any]:
        return {"sessions": [s.view() for s in service.watch.board.sessions()]}

    @router.get(
        "/handoffs",
        summary="Sessions waiting for a person, oldest first",
        responses=error_responses(401, 403),
    )
    async def handoffs(_: Staff) -> dict[str, Any]:
        return {"sessions": [s.view() for s in service.watch.board.handoffs()]}

    @router.get(
        "/sessions/{session_id}",
        summary="A live session with its transcript",
        responses=error_responses(401, 403, 404),
    )
    async def session(_: Staff, session_id: str) -> dict[str, Any]:
        return _live(service, session_id).detail()

    @router.post(
        "/sessions/{session_id}/takeover",
        summary="A person takes the session over",
        responses=error_responses(401, 403, 404, 409, 503),
    )
    async def takeover(caller: Staff, session_id: str) -> dict[str, Any]:
        """The bot stops answering the session; its customer is told a person joined."""
        live = _live(service, session_id)
        agent = caller.user_id or "operator"
        if live.channel != "ws":
            raise ApiError(
                409,
                "this session's client talks HTTP and cannot receive a person's messages",
                code="not_a_live_chat",
            )
        if live.agent not in (None, agent):
            raise ApiError(409, f"{live.agent} has taken this session over", code="taken")
        now = time.time()
        event = Takeover(session_id=session_id, agent=agent, active=True, at=now)
        await _publish(service, session_id, event)
        request = HandoffRequested(
            session_id=session_id,
            user_id=live.user_id,
            tenant=live.tenant,
            trigger="takeover",
            reason=f"{agent} took the conversation over",
            agent=agent,
            at=now,
        )
        try:
            await service.bus.publish(topics.handoff(session_id), request)
        except BusError as exc:
            _log.warning("takeover not sent to the help desk", error=str(exc))
        service.watch.board.apply(event, now=now)
        return live.view()

    @router.post(
        "/sessions/{session_id}/messages",
        status_code=202,
        summary="Say something to the customer of a session taken over",
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def say(caller: Staff, session_id: str, body: AgentText) -> dict[str, str]:
        live = _live(service, session_id)
        agent = caller.user_id or "operator"
        if live.agent != agent:
            raise ApiError(409, "take the session over first", code="not_taken_over")
        message_id = f"a{secrets.token_hex(8)}"
        event = AgentMessage(
            session_id=session_id,
            agent=agent,
            message_id=message_id,
            text=redact(body.text),
            at=time.time(),
        )
        await _publish(service, session_id, event)
        return {"id": message_id}

    @router.post(
        "/sessions/{session_id}/release",
        summary="Give the session back to the bot",
        responses=error_responses(401, 403, 404, 409, 503),
    )
    async def release(caller: Staff, session_id: str) -> dict[str, Any]:
        live = _live(service, session_id)
        agent = caller.user_id or "operator"
        if live.agent != agent:
            raise ApiError(409, "this session is not taken over by you", code="not_taken_over")
        now = time.time()
        event = Takeover(session_id=session_id, agent=agent, active=False, at=now)
        await _publish(service, session_id, event)
        service.watch.board.apply(event, now=now)
        return live.view()

    @router.get(
        "/users/{user_id}/history",
        summary="A user's emotional history across sessions",
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def history(_: Staff, user_id: str, tenant: str | None = None) -> dict[str, Any]:
        """Each session's mood and every turn's reading, oldest first."""
        if service.history is None:
            raise ApiError(
                503,
                "this gateway has no database: set HEARTLINE_DATABASE_URL on it to read histories",
                code="no_database",
            )
        try:
            timeline = await service.history(user_id, tenant or service.default_tenant)
        except StoreError as exc:
            raise ApiError(503, "the database is unavailable", code="unavailable") from exc
        if timeline is None:
            raise ApiError(404, "no history for this user", code="unknown_user")
        return _timeline_view(timeline)

    @router.websocket("/ws")
    async def follow(websocket: WebSocket) -> None:
        """A snapshot of the live sessions, then every change, as JSON text frames."""
        refusal = _console_refusal(service.authority, websocket.query_params.get("token", ""))
        if refusal is not None:
            await websocket.send_denial_response(
                PlainTextResponse(f"unauthorized: {refusal}\n", status_code=401)
            )
            return
        await websocket.accept()
        await _stream_board(websocket, service.watch)

    return router


def _console_refusal(authority: TokenAuthority, token: str) -> str | None:
    """Why a console's token is refused, or None for a valid operator token."""
    try:
        principal = authority.verify(token)
    except AuthError as exc:
        return str(exc)
    return None if principal.role is Role.OPERATOR else "this needs an operator token"


def _frames(change: BoardChange) -> list[dict[str, Any]]:
    if change.session is None:
        return [{"type": "closed", "session_id": change.session_id}]
    frames: list[dict[str, Any]] = [{"type": "session", "session": change.session.view()}]
    frames += [
        {"type": "transcript", "session_id": change.session_id, "entry": entry.view()}
        for entry in change.entries
    ]
    return frames


async def _stream_board(websocket: WebSocket, watch: Watch) -> None:
    """Send the snapshot and the changes until the console goes away."""
    with watch.listen() as changes:
        async with asyncio.TaskGroup() as tasks:
            sender = tasks.create_task(_send_changes(websocket, watch, changes))
            try:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass  # a console has nothing to say; reading notices it leaving
            finally:
                sender.cancel()


async def _send_changes(
    websocket: WebSocket, watch: Watch, changes: asyncio.Queue[BoardChange | None]
) -> None:
    snapshot = {"type": "snapshot", "sessions": [s.view() for s in watch.board.sessions()]}
    try:
        await websocket.send_text(encode_text(snapshot))
        while (change := await changes.get()) is not None:
            for frame in _frames(change):
                await websocket.send_text(encode_text(frame))
        await websocket.close(CLOSE_BEHIND, "fell behind; reconnect for a fresh snapshot")
    except (WebSocketDisconnect, WebSocketDisconnected, OSError):
        return
