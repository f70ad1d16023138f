"""The client-facing server: one port for the WebSocket protocol, the HTTP APIs, the pages
and the health and metrics probes; token and API-key authentication; limits.

`serve_gateway` is the entry point; docs/protocol.md describes the WebSocket protocol.
"""

from agent.gateway.auth import TokenAuthority, load_or_create_secret
from agent.gateway.limits import ConnectionLimits, TokenBucket
from agent.gateway.protocol import PROTOCOL_VERSION, ErrorCode, WireError
from agent.gateway.server import WS_PATH, Gateway, GatewaySettings, serve_gateway

__all__ = [
    "PROTOCOL_VERSION",
    "WS_PATH",
    "ConnectionLimits",
    "ErrorCode",
    "Gateway",
    "GatewaySettings",
    "TokenAuthority",
    "TokenBucket",
    "WireError",
    "load_or_create_secret",
    "serve_gateway",
]
