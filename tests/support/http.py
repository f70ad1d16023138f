"""A plain HTTP/1.1 GET on 127.0.0.1, for probe and metrics endpoints."""

from __future__ import annotations

import asyncio

__all__ = ["http_get"]


async def http_get(port: int, path: str) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of a plain HTTP/1.1 GET."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        async with asyncio.timeout(10.0):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    return status, headers.get("content-type", ""), body
