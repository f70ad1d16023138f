"""The floor of a relay: an LLM's stream passed on as WebSocket frames, with nothing between.

What any Python server pays on this machine to pass an upstream's tokens on to
WebSocket clients one frame per token, before it does anything else: uvloop, one
aiohttp session to the upstream, the websockets library's server declining
permessage-deflate (as Heartline does by default), one serving process per core, each
with its own SO_REUSEPORT socket on one port. It speaks the part of Heartline's protocol
that bench/ws_load.py's clients use (`ready`, `user_message`, `reply_delta`,
`reply_end`), so that the same clients load both. No authentication, emotion, policy,
guard, history or storage. It prints `listening on ws://127.0.0.1:PORT/ws` once every
serving process accepts connections and runs until SIGTERM or SIGINT.

    .venv/bin/python bench/bare_relay.py --upstream http://127.0.0.1:8000/v1 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from multiprocessing.synchronize import Event

import aiohttp
from websockets.asyncio.server import ServerConnection, serve

__all__ = ["sse_texts"]

HOST = "127.0.0.1"
_READY = json.dumps({"type": "ready"})


async def sse_texts(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The text of each delta of an OpenAI chat-completion event stream, to its end."""
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        *events, buffer = buffer.split(b"\n\n")
        for event in events:
            data = event.removeprefix(b"data: ")
            if data == b"[DONE]":
                continue
            choices = json.loads(data).get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content")
            if text:
                yield text


async def _session(ws: ServerConnection, http: aiohttp.ClientSession, url: str, model: str) -> None:
    await ws.send(_READY)
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") != "user_message":
            continue
        turn_id = message["id"]
        messages = [{"role": "user", "content": message["text"]}]
        body = {"model": model, "messages": messages, "stream": True}
        async with http.post(url, json=body) as response:
            async for text in sse_texts(response):
                delta = {"type": "reply_delta", "turn_id": turn_id, "text": text}
                await ws.send(json.dumps(delta))
        await ws.send(json.dumps({"type": "reply_end", "turn_id": turn_id}))


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((HOST, port))
    return sock


async def _serve(port: int, upstream: str, model: str, ready: Event) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=0)
    url = f"{upstream.rstrip('/')}/chat/completions"
    async with aiohttp.ClientSession(connector=connector) as http:

        async def handler(ws: ServerConnection) -> None:
            with contextlib.suppress(Exception):
                await _session(ws, http, url, model)

        sock = _listener(port)
        async with serve(handler, sock=sock, compression=None, ping_interval=None):
            ready.set()
            await stop.wait()


def _serving_process(port: int, upstream: str, model: str, ready: Event) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve(port, upstream, model, ready))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, /v1")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    holder = _listener(args.port)  # holds the port; it never listens, so takes no connection
    port = holder.getsockname()[1]
    context = multiprocessing.get_context("fork")
    processes = []
    for _ in range(args.workers):
        ready = context.Event()
        process = context.Process(
            target=_serving_process, args=(port, args.upstream, args.model, ready)
        )
        process.start()
        processes.append((process, ready))
    try:
        for _, ready in processes:
            if not ready.wait(30):
                raise RuntimeError("a serving process did not start within 30 s")
        stops = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # here only: the children stop on them
        print(f"listening on ws://{HOST}:{port}/ws", flush=True)
        signal.sigwait(stops)
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            process.join()
        holder.close()


if __name__ == "__main__":
    main()
