"""Errors over HTTP, in the OpenAI error shape, for every route of the server.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`` with the
matching status: OpenAI SDKs raise their typed errors from it, and anyone else
reads one stable shape. Messages are for people and carry no internals.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ApiError",
    "ErrorBody",
    "api_error_response",
    "error_body",
    "error_responses",
    "install_error_handlers",
]

_log = structlog.get_logger(__name__)

_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    426: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error answer: `{"error": {...}}`, the OpenAI shape."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for a route's error statuses, all in the error shape."""
    return {
        status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
        for status in statuses
    }


class ApiError(Exception):
    """An error a route answers with: status, a message for people, a stable `code`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers


def error_body(status: int, message: str, *, code: str | None, param: str | None) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def api_error_response(error: ApiError) -> JSONResponse:
    body = error_body(error.status, error.message, code=error.code, param=error.param)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(where) or None
    message = str(first.get("msg", "invalid request"))
    if param:
        message = f"{param}: {message}"
    return message, param


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app answers with becomes the OpenAI shape, 500s included; the
    OpenAPI schema says so (400 where FastAPI would document its 422)."""
    _document_invalid_requests_as_400(app)

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return api_error_response(exc)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        phrase = HTTPStatus(exc.status_code).phrase.lower()
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
        if exc.status_code == 404 and message == "Not Found":
            message = "no such path; see /docs for what this server answers"
        elif exc.status_code == 405:
            message = "this path does not take that method; see /docs"
        body = error_body(exc.status_code, message, code=phrase.replace(" ", "_"), param=None)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = _validation_message(exc)
        body = error_body(400, message, code="invalid_request", param=param)
        return JSONResponse(body, status_code=400)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        _log.error("request failed", error=type(exc).__name__, exc_info=exc)
        body = error_body(500, "internal error", code="internal", param=None)
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_unexpected)


def _document_invalid_requests_as_400(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": "Invalid request",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorBody"}
                                }
                            },
                        },
                    )
        schemas = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
