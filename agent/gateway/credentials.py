"""Who an HTTP request speaks for, from its `Authorization: Bearer` credential.

A credential is a token (a JWT from `heartline token`: a user, or staff with the
operator role) or an API key (`HEARTLINE_API_KEYS`: a tenant's backend, which
names the end user in each request). Anything else is refused with 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.errors import AuthError
from agent.gateway.api_keys import ApiKeys
from agent.gateway.auth import Role, TokenAuthority
from agent.gateway.http_errors import ApiError

__all__ = ["Caller", "Credentials"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="heartline"'}
# For the OpenAPI schema's security scheme; the header is checked by `Credentials`.
_BEARER = HTTPBearer(
    auto_error=False,
    description="An API key (HEARTLINE_API_KEYS), a user token (`heartline token --user "
    "NAME`) or, for the operator API, an operator token (`heartline token --operator NAME`).",
)


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller: its tenant, its user when a user token fixes it, its role."""

    tenant: str
    user_id: str | None
    role: Role
    api_key: bool = False


def _unauthorized(message: str, code: str = "invalid_api_key") -> ApiError:
    return ApiError(401, message, code=code, headers=_CHALLENGE)


class Credentials:
    """Verifies bearer credentials against the token secret and the API keys."""

    __slots__ = ("_api_keys", "_authority", "_default_tenant")

    def __init__(
        self, authority: TokenAuthority, api_keys: ApiKeys, *, default_tenant: str
    ) -> None:
        self._authority = authority
        self._api_keys = api_keys
        self._default_tenant = default_tenant

    def caller(self, authorization: str | None) -> Caller:
        """The caller of a request's `Authorization` header; `ApiError(401)` if none is valid."""
        if not authorization:
            raise _unauthorized(
                "send 'Authorization: Bearer <key>' with an API key or a token "
                "(`heartline token --user NAME`)",
                code="missing_credentials",
            )
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _unauthorized("use 'Authorization: Bearer <key or token>'")
        tenant = self._api_keys.tenant_of(credential)
        if tenant is not None:
            return Caller(tenant=tenant, user_id=None, role=Role.USER, api_key=True)
        if credential.count(".") != 2:
            raise _unauthorized("the API key is not valid")
        try:
            principal = self._authority.verify(credential)
        except AuthError as exc:
            raise _unauthorized(f"the token is not valid: {exc}", code="invalid_token") from exc
        return Caller(
            tenant=principal.tenant or self._default_tenant,
            user_id=principal.user_id,
            role=principal.role,
        )

    def user(self, authorization: str | None) -> Caller:
        """A caller that may talk to the agent: a user token or an API key."""
        caller = self.caller(authorization)
        if caller.role is not Role.USER:
            raise ApiError(403, "an operator token cannot talk to the agent", code="forbidden")
        return caller

    def operator(self, authorization: str | None) -> Caller:
        """A caller with the operator role (staff)."""
        caller = self.caller(authorization)
        if caller.role is not Role.OPERATOR:
            raise ApiError(
                403,
                "this needs an operator token (`heartline token --operator NAME`)",
                code="forbidden",
            )
        return caller

    def require_user(self) -> Callable[..., Caller]:
        """A FastAPI dependency: the request's caller, who may talk to the agent."""

        def dependency(
            request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
        ) -> Caller:
            return self.user(request.headers.get("authorization"))

        return dependency

    def require_operator(self) -> Callable[..., Caller]:
        """A FastAPI dependency: the request's caller, who must be staff."""

        def dependency(
            request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
        ) -> Caller:
            return self.operator(request.headers.get("authorization"))

        return dependency
