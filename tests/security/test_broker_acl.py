"""Against a real mosquitto 2.0.11: who may connect, publish and read what, and revocation.

Observed mosquitto 2.0.11 behaviour these tests pin down (docs/security.md relies on it):
a denied QoS 1 publish gets PUBACK 0x87 (and the broker then drops the connection); a
subscription to a forbidden filter is granted but nothing is delivered through it;
SIGHUP re-reads both files and disconnects clients whose credential is gone.
"""

from __future__ import annotations

import pytest

from devices.registry import editing

from .conftest import SecureBroker
from .probe import Probe, connect

pytestmark = pytest.mark.integration

DENIED = 0x87  # MQTT 5 "Not authorized"
BAD_LOGIN = (0x86, 0x87)  # "Bad user name or password" / "Not authorized"


def _accepted(rc: int) -> bool:
    return rc < 0x80  # 0 = success, 0x10 = accepted but no subscribers


def _listener(sb: SecureBroker) -> Probe:
    """The ingest account, subscribed to everything it may read."""
    ing = connect(sb.settings("ingest"))
    assert ing.ok, f"ingest login refused ({ing.connack}); broker log: {sb.broker.log}"
    assert ing.subscribe(sb.topics.telemetry_filter()) == 1
    assert ing.subscribe(f"{sb.topics.prefix}/v1/status/+") == 1
    return ing


def test_device_publishes_only_its_own_topics(secure_broker: SecureBroker) -> None:
    sb, t = secure_broker, secure_broker.topics
    ing = _listener(sb)
    api = connect(sb.settings("api"))
    assert api.ok and api.subscribe(f"{t.prefix}/v1/alerts/#") == 1
    try:
        dev = connect(sb.settings("meter-1"))
        assert dev.ok
        assert _accepted(dev.publish(t.telemetry("energy_meter", "meter-1"), b"own"))
        assert _accepted(dev.publish(t.status("meter-1"), b"status"))
        got = sorted(ing.receive(2.0))
        assert got == [
            (t.status("meter-1"), b"status"),
            (t.telemetry("energy_meter", "meter-1"), b"own"),
        ]
        forbidden = [
            t.telemetry("energy_meter", "meter-2"),  # another device
            t.telemetry("wearable", "meter-1"),  # its own id under another kind
            t.status("gw-1"),
            t.alert("care", "wear-1"),
            t.deadletter("schema"),
        ]
        for topic in forbidden:
            dev.close()
            dev = connect(sb.settings("meter-1"))  # 2.0.11 drops the client after a denial
            assert dev.ok
            assert dev.publish(topic, b"forged") == DENIED, topic
        assert ing.receive(1.0) == [] and api.receive(0.2) == []
        dev.close()
    finally:
        ing.close()
        api.close()


def test_device_reads_nothing(secure_broker: SecureBroker) -> None:
    sb, t = secure_broker, secure_broker.topics
    spy = connect(sb.settings("meter-1"))
    other = connect(sb.settings("wear-1"))
    try:
        assert spy.ok and other.ok
        spy.subscribe("#")
        spy.subscribe(t.telemetry_filter())
        assert _accepted(other.publish(t.telemetry("wearable", "wear-1"), b"care data"))
        assert _accepted(other.publish(t.status("wear-1"), b"online"))
        assert spy.receive(1.5) == []
    finally:
        spy.close()
        other.close()


def test_logins_without_a_valid_credential_are_refused(secure_broker: SecureBroker) -> None:
    sb = secure_broker
    assert connect(sb.settings("meter-1", "wrong")).connack in BAD_LOGIN
    assert connect(sb.settings(None)).connack in BAD_LOGIN  # anonymous
    assert connect(sb.settings("meter-2", "anything")).connack in BAD_LOGIN  # no credential
    # one identity's secret does not open another identity
    assert connect(sb.settings("meter-1", sb.secrets["wear-1"])).connack in BAD_LOGIN


def test_agent_publishes_for_its_devices_only(secure_broker: SecureBroker) -> None:
    sb, t = secure_broker, secure_broker.topics
    ing = _listener(sb)
    try:
        gw = connect(sb.settings("gw-1"))
        assert gw.ok
        assert _accepted(gw.publish(t.telemetry("energy_meter", "meter-2"), b"m2"))
        assert _accepted(gw.publish(t.telemetry("bus", "bus-1"), b"b1"))
        assert _accepted(gw.publish(t.status("gw-1"), b"online"))
        assert len(ing.receive(2.0)) == 3
        assert gw.publish(t.telemetry("energy_meter", "meter-1"), b"not mine") == DENIED
        gw.close()
        assert ing.receive(1.0) == []
    finally:
        ing.close()


def test_service_accounts_have_only_their_grants(secure_broker: SecureBroker) -> None:
    sb, t = secure_broker, secure_broker.topics
    ing = _listener(sb)
    api = connect(sb.settings("api"))
    assert api.ok and api.subscribe(f"{t.prefix}/v1/alerts/#") == 1
    try:
        ev = connect(sb.settings("events"))
        assert ev.ok and _accepted(ev.publish(t.alert("care", "wear-1"), b"fall"))
        assert api.receive(2.0) == [(t.alert("care", "wear-1"), b"fall")]
        assert ev.publish(t.telemetry("wearable", "wear-1"), b"forged") == DENIED
        ev.close()
        pub = connect(sb.settings("ingest"))
        assert pub.ok and _accepted(pub.publish(t.deadletter("schema"), b"bad"))
        assert pub.publish(t.telemetry("bus", "bus-1"), b"forged") == DENIED
        pub.close()
        a2 = connect(sb.settings("api"))
        assert a2.ok and a2.publish(t.alert("care", "wear-1"), b"forged") == DENIED
        a2.close()
        assert ing.receive(1.0) == [] and api.receive(0.2) == []
    finally:
        ing.close()
        api.close()


def test_revocation_refuses_new_and_drops_existing_connections(
    secure_broker: SecureBroker,
) -> None:
    sb, t = secure_broker, secure_broker.topics
    ing = _listener(sb)
    dev = connect(sb.settings("meter-1"))
    bystander = connect(sb.settings("wear-1"))
    try:
        assert dev.ok and bystander.ok
        assert _accepted(dev.publish(t.telemetry("energy_meter", "meter-1"), b"before"))
        assert ing.receive(2.0) == [(t.telemetry("energy_meter", "meter-1"), b"before")]

        with editing(sb.registry_path) as reg:
            reg.revoke("meter-1")
        sb.reexport_and_reload()

        # The open connection is closed by the broker on reload, within moments.
        assert dev.disconnected.wait(5.0), "revoked device still connected after SIGHUP"
        dev.close()
        again = connect(sb.settings("meter-1"))
        assert again.connack in BAD_LOGIN
        # Everyone else is untouched and keeps publishing on the same connection.
        assert not bystander.disconnected.is_set()
        assert _accepted(bystander.publish(t.telemetry("wearable", "wear-1"), b"after"))
        assert ing.receive(2.0) == [(t.telemetry("wearable", "wear-1"), b"after")]
    finally:
        ing.close()
        bystander.close()


def test_rotation_retires_the_old_secret(secure_broker: SecureBroker) -> None:
    sb = secure_broker
    old = sb.secrets["wear-1"]
    with editing(sb.registry_path) as reg:
        new = reg.rotate("wear-1")
    sb.reexport_and_reload()
    fresh = connect(sb.settings("wear-1", new))
    assert fresh.ok, f"new secret refused ({fresh.connack})"
    fresh.close()
    assert connect(sb.settings("wear-1", old)).connack in BAD_LOGIN


def test_storage_confirmations_reach_only_their_own_device(secure_broker: SecureBroker) -> None:
    """Ingest may publish confirmations; each publisher reads only its own devices' ones
    and nobody else can forge one (a forged confirmation would make an agent drop data)."""
    sb, t = secure_broker, secure_broker.topics
    dev = connect(sb.settings("meter-1"))
    gw = connect(sb.settings("gw-1"))
    pub = connect(sb.settings("ingest"))
    try:
        assert dev.ok and gw.ok and pub.ok
        for topic in (t.stored("meter-1"), t.stored("meter-2")):
            dev.subscribe(topic)
        for topic in (t.stored("meter-2"), t.stored("bus-1"), t.stored("meter-1")):
            gw.subscribe(topic)
        for d in ("meter-1", "meter-2", "bus-1", "wear-1"):
            assert _accepted(pub.publish(t.stored(d), d.encode())), d
        assert dev.receive(2.0) == [(t.stored("meter-1"), b"meter-1")]
        assert sorted(gw.receive(1.0)) == [
            (t.stored("bus-1"), b"bus-1"),
            (t.stored("meter-2"), b"meter-2"),
        ]
        # Nobody but ingest may publish one, not even for its own device.
        for who, topic in (("meter-1", t.stored("meter-1")), ("gw-1", t.stored("meter-2"))):
            forger = connect(sb.settings(who))
            assert forger.ok and forger.publish(topic, b"forged") == DENIED, who
            forger.close()
        assert dev.receive(1.0) == [] and gw.receive(0.2) == []
    finally:
        dev.close()
        gw.close()
        pub.close()
