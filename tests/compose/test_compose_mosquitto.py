"""The compose broker's auth setup on the REAL mosquitto: the documented step
(`machi devices add` + `machi devices export`) makes a passwd that the compose config
accepts, the committed ACL lets the service accounts do their job, anonymous is refused."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from contract.mqtt import MqttOptions, connect, make_client
from contract.settings import Settings
from machi.cli import main
from machi.servers import Mosquitto

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_CONF = ROOT / "deploy/compose/mosquitto/mosquitto.conf"
COMMITTED_ACL = ROOT / "deploy/compose/mosquitto/acl"


def _auth_lines(auth_dir: Path) -> str:
    """The compose config's auth lines, with the container's auth folder moved to tmp.
    (Listener, log and paths come from machi.servers, the one way to start mosquitto.)"""
    text = COMPOSE_CONF.read_text()
    lines = re.findall(r"^(?:allow_anonymous|password_file|acl_file) .+$", text, re.M)
    assert len(lines) == 3
    return "\n".join(lines).replace("/mosquitto/auth", str(auth_dir)) + "\n"


def _secret(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["devices", *args]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


class _Conn:
    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        cred = f"{user}:{password}@" if user else ""
        settings = Settings(mqtt_url=f"mqtt://{cred}127.0.0.1:{port}")
        self.client, url = make_client(settings, MqttOptions(client_id=f"t-{user}", protocol=311))
        self.connected = threading.Event()
        self.rc: object = None
        self.messages: list[str] = []
        self.got = threading.Event()

        def on_connect(c, u, flags, rc, props=None):  # type: ignore[no-untyped-def]
            self.rc = rc
            self.connected.set()

        def on_message(c, u, msg):  # type: ignore[no-untyped-def]
            self.messages.append(msg.topic)
            self.got.set()

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        connect(self.client, url, MqttOptions(client_id=f"t-{user}", protocol=311))
        self.client.loop_start()
        assert self.connected.wait(10)

    @property
    def ok(self) -> bool:
        return not getattr(self.rc, "is_failure", True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_documented_auth_step_works_on_real_mosquitto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MACHI_REGISTRY", str(tmp_path / "devices.json"))
    ingest_pw = _secret(capsys, "add", "ingest", "--role", "ingest")
    sim_pw = _secret(capsys, "add", "simulator", "--role", "agent")
    api_pw = _secret(capsys, "add", "api", "--role", "api")
    auth = tmp_path / "auth"
    auth.mkdir()
    # The documented export, then the committed ACL (service accounts + demo simulator).
    passwd = auth / "passwd"
    assert main(["devices", "export", "--passwd", str(passwd), "--acl", str(auth / "acl0")]) == 0
    (auth / "acl").write_text(COMMITTED_ACL.read_text())

    broker = Mosquitto(tmp_path / "mq", extra_conf=_auth_lines(auth))
    broker.start()
    conns: list[_Conn] = []
    try:
        anon = _Conn(broker.port, None, None)
        conns.append(anon)
        assert not anon.ok, "anonymous clients must be refused"
        wrong = _Conn(broker.port, "ingest", "not-the-secret")
        conns.append(wrong)
        assert not wrong.ok

        ingest = _Conn(broker.port, "ingest", ingest_pw)
        sim = _Conn(broker.port, "simulator", sim_pw)
        conns += [ingest, sim]
        assert ingest.ok and sim.ok
        ingest.client.subscribe("city/v1/telemetry/+/+", qos=1)
        ingest.client.subscribe("city/v1/status/+", qos=1)
        threading.Event().wait(0.3)
        sim.client.publish("city/v1/telemetry/wearable/w-1", b"{}", qos=1).wait_for_publish(5)
        assert ingest.got.wait(5)
        assert ingest.messages == ["city/v1/telemetry/wearable/w-1"]
        # The api account may read alerts: ingest's alert reaches it (positive control),
        # the simulator's forged alert is dropped by the broker's ACL.
        api = _Conn(broker.port, "api", api_pw)
        conns.append(api)
        api.client.subscribe("city/v1/alerts/#", qos=1)
        threading.Event().wait(0.3)
        sim.client.publish("city/v1/alerts/care/forged", b"{}", qos=1).wait_for_publish(5)
        ingest.client.publish("city/v1/alerts/care/w-1", b"{}", qos=1).wait_for_publish(5)
        assert api.got.wait(5)
        threading.Event().wait(0.5)
        assert api.messages == ["city/v1/alerts/care/w-1"]
    finally:
        for c in conns:
            c.close()
        broker.kill()


def test_mqtt_failure_codes_are_failures() -> None:
    # Guards the helper above: paho's ReasonCode for "not authorized" reports is_failure.
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    assert ReasonCode(PacketTypes.CONNACK, "Not authorized").is_failure
    assert not ReasonCode(PacketTypes.CONNACK, "Success").is_failure
    assert mqtt.MQTT_ERR_SUCCESS == 0
