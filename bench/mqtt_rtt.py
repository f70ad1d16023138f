"""QoS 1 publish-to-receive round trip through an MQTT broker, TCP_NODELAY on vs off.

One publisher and one subscriber client per mode, both with the mode's
TCP_NODELAY setting; each sample is the time from `publish()` to the message
arriving at the subscriber. The broker's own `set_tcp_nodelay` matters as much:
run it against a broker with and without it to see both sides.

    python bench/mqtt_rtt.py --host 127.0.0.1 --port 1883 --count 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import time
import uuid

import aiomqtt


def _client(host: str, port: int, *, nodelay: bool) -> aiomqtt.Client:
    return aiomqtt.Client(
        host,
        port,
        protocol=aiomqtt.ProtocolVersion.V5,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if nodelay else 0)],
        timeout=10,
    )


async def measure(
    host: str, port: int, *, nodelay: bool, shared: bool, count: int, warmup: int
) -> list[float]:
    """Round trips in milliseconds, `count` of them after `warmup` unrecorded ones.

    `shared`: publish and receive on one connection, as one `MqttBus` does.
    """
    topic = f"hlbench/{uuid.uuid4().hex}"
    payload = b'{"type":"reply_delta","v":1,"session_id":"s","turn_id":"t","seq":0,"text":"hi"}'
    samples: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        subscriber = await stack.enter_async_context(_client(host, port, nodelay=nodelay))
        publisher = subscriber
        if not shared:
            publisher = await stack.enter_async_context(_client(host, port, nodelay=nodelay))
        await subscriber.subscribe(topic, qos=1)
        messages = aiter(subscriber.messages)
        for index in range(warmup + count):
            started = time.perf_counter()
            async with asyncio.timeout(10):
                await publisher.publish(topic, payload, qos=1)
                await anext(messages)
            if index >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--count", type=int, default=200, help="samples per mode (max 10000)")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    count = max(2, min(args.count, 10_000))

    broker = f"{args.host}:{args.port}"
    print(f"QoS 1 publish->receive round trip, {count} samples per row, broker {broker}")
    print(f"{'connections':<14}{'TCP_NODELAY':<13}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for layout, shared in (("one (bus)", True), ("two", False)):
        p50: dict[bool, float] = {}
        for nodelay in (True, False):
            samples = await measure(
                args.host,
                args.port,
                nodelay=nodelay,
                shared=shared,
                count=count,
                warmup=args.warmup,
            )
            row = [percentile(samples, q) for q in (50, 95, 99)]
            p50[nodelay] = row[0]
            mode = "on" if nodelay else "off"
            print(f"{layout:<14}{mode:<13}" + "".join(f"{value:>9.3f}" for value in row))
        print(f"{layout:<14}{'p50 off/on':<13}{p50[False] / p50[True]:>8.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
