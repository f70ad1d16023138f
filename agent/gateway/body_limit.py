"""An ASGI middleware that bounds request bodies: 413 past `max_bytes`, read or declared."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.gateway.http_errors import ApiError, api_error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """Refuses a body whose `Content-Length` is too large before reading it, and stops
    reading a chunked one as soon as it grows past the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(
            413, f"the request body is larger than {self._max} bytes", code="body_too_large"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self._max):
                await api_error_response(self._too_large())(scope, receive, send)
                return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise self._too_large()
            return message

        await self._app(scope, bounded, send)
