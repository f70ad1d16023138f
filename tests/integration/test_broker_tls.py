"""TLS to the broker: the bus speaks it when given the CA, and trusts no other."""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import topics
from agent.bus.mqtt import MqttBus
from agent.bus.mqtt_settings import MqttSettings
from agent.errors import BusError, ConfigError
from agent.events import Cancel
from tests.fixtures.mqtt import PrivateBroker, find_mosquitto
from tests.fixtures.services import missing

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _authority(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: its certificate and key."""
    _openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
        *("-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}"),
        cwd=folder,
    )
    return folder / f"{name}.crt", folder / f"{name}.key"


def _server_certificate(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by `ca`: its file and its key."""
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key"),
        *("-out", "server.csr", "-subj", "/CN=127.0.0.1"),
        cwd=folder,
    )
    _openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1])),
        *("-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext"),
        cwd=folder,
    )
    return folder / "server.crt", folder / "server.key"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[PrivateBroker, Path]]:
    """A broker that speaks TLS only, and the CA its certificate chains to."""
    binary = find_mosquitto()
    if binary is None:
        missing("the mosquitto binary is not installed")
    ca = _authority(tmp_path, "heartline-test-ca")
    certificate, key = _server_certificate(tmp_path, ca)
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = PrivateBroker(binary, folder, tls=(ca[0], certificate, key))
    broker.start()
    try:
        yield broker, ca[0]
    finally:
        broker.stop()
        broker.remove_files()


async def test_the_bus_speaks_tls_to_a_broker_whose_certificate_it_trusts(
    tls_broker: tuple[PrivateBroker, Path],
) -> None:
    broker, ca = tls_broker
    settings = MqttSettings(host=broker.host, port=broker.port, tls_ca_file=ca)
    cancel = Cancel(session_id="s1", turn_id="t1", reason="client")
    async with MqttBus(settings) as bus, bus.subscribe(topics.cancel("s1")) as cancels:
        await bus.publish(topics.cancel("s1"), cancel)
        assert (await cancels.get()).event == cancel


# paho-mqtt leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_no_plain_connection_and_no_untrusted_certificate(
    tls_broker: tuple[PrivateBroker, Path], tmp_path: Path
) -> None:
    broker, _ = tls_broker
    quick = {"host": broker.host, "port": broker.port, "connect_timeout_s": 2.0}
    with pytest.raises(BusError):
        async with MqttBus(MqttSettings(**quick)):  # type: ignore[arg-type]
            pass
    stranger, _ = _authority(tmp_path, "another-ca")
    with pytest.raises(BusError):
        async with MqttBus(MqttSettings(**quick, tls_ca_file=stranger)):  # type: ignore[arg-type]
            pass
    gc.collect()  # those sockets, here rather than in a later test


def test_unreadable_tls_files_are_a_clear_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot use the broker's TLS files"):
        MqttBus(MqttSettings(tls_ca_file=tmp_path / "missing.crt"))
    with pytest.raises(ConfigError, match="needs its CA file"):
        MqttSettings(tls_cert_file=tmp_path / "client.crt")
