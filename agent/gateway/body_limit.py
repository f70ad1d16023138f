"""An ASGI middleware that bounds request bodies: 413 past `max_bytes`, declared or sent.

A body with a `Content-Length` over the limit is refused before it is read; any
other body is read here, up to the limit, and handed on whole. No route sees a
body larger than the limit, and the client gets 413 (not a parse error) for one.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.gateway.http_errors import ApiError, api_error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(
            413, f"the request body is larger than {self._max} bytes", code="body_too_large"
        )
        await api_error_response(error)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self._max:
                await self._refuse(scope, receive, send)
                return
            if int(declared) == 0:
                await self._app(scope, receive, send)
                return
        elif b"transfer-encoding" not in headers:
            await self._app(scope, receive, send)  # no body
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self._max:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def whole_body() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self._app(scope, whole_body, send)
