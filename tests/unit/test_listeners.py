"""The supervisor's listening sockets: one a serving process, on one port, connections
spread evenly by the kernel; a port another server holds is refused, not shared."""

from __future__ import annotations

import selectors
import socket
from collections import Counter

import pytest

from agent.gateway.http_server import balances_reuse_port, bind_listener
from agent.processes import bind_listeners

pytestmark = pytest.mark.skipif(not balances_reuse_port(), reason="SO_REUSEPORT balancing")

CONNECTIONS = 200


def test_each_process_gets_its_own_socket_on_one_port() -> None:
    listeners = bind_listeners("127.0.0.1", 0, 3)
    try:
        assert len({id(sock) for sock in listeners}) == 3
        assert len({sock.getsockname()[1] for sock in listeners}) == 1
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in listeners)
    finally:
        for sock in listeners:
            sock.close()


def test_the_kernel_spreads_connections_over_the_sockets() -> None:
    listeners = bind_listeners("127.0.0.1", 0, 2)
    port = listeners[0].getsockname()[1]
    clients: list[socket.socket] = []
    accepted: Counter[int] = Counter()
    try:
        with selectors.DefaultSelector() as selector:
            for index, sock in enumerate(listeners):
                selector.register(sock, selectors.EVENT_READ, index)
            for _ in range(CONNECTIONS):
                clients.append(socket.create_connection(("127.0.0.1", port)))
            while accepted.total() < CONNECTIONS:
                events = selector.select(timeout=10)
                assert events, f"only {accepted.total()} connections arrived"
                for key, _ in events:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    conn.close()
                    accepted[key.data] += 1
    finally:
        for sock in [*clients, *listeners]:
            sock.close()
    # Hashed over two sockets, each gets fewer than 60 of 200 with odds below 1e-8.
    assert min(accepted[0], accepted[1]) >= 60, accepted


def test_a_port_another_server_holds_is_refused() -> None:
    other = bind_listener("127.0.0.1", 0, reuse_port=True)
    try:
        with pytest.raises(OSError, match="in use"):
            bind_listeners("127.0.0.1", other.getsockname()[1], 2)
    finally:
        other.close()
