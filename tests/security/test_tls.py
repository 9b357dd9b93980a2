"""TLS with client certificates against a real mosquitto, through ``contract.mqtt``.

Two listener modes (docs/security.md "TLS"):

* cert + password (machi's default, ``identity_from_cert=False``): the TLS listener
  requires a certificate from the machi CA *and* the registry password, so revocation
  refuses the login at once.
* cert as identity (``use_identity_as_username``): the CN is the username and no
  password is sent; a revoked CN can still complete TLS but the ACL lets it do nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contract.settings import Settings
from contract.topics import Topics
from devices.mosquitto_files import broker_conf, export, tls_listener_conf
from devices.registry import editing, load
from machi.servers import Mosquitto, free_port

from .conftest import SecureBroker, build_registry
from .pki import Cert, issue, make_ca
from .probe import Probe, connect

pytestmark = pytest.mark.integration


@dataclass
class TlsBroker:
    sb: SecureBroker
    tls_port: int
    ca: Cert
    meter: Cert  # CN=meter-1, from the machi CA
    stranger: Cert  # CN=meter-1, from another CA

    def settings(
        self, cert: Cert | None, user: str | None = None, pw: str | None = None
    ) -> Settings:
        cred = f"{user}:{pw}@" if user else ""
        return Settings(
            mqtt_url=f"mqtts://{cred}127.0.0.1:{self.tls_port}",
            topic_prefix=self.sb.topics.prefix,
            mqtt_ca=str(self.ca.cert),
            mqtt_cert=str(cert.cert) if cert else None,
            mqtt_key=str(cert.key) if cert else None,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Cert, Cert, Cert]:
    d = tmp_path_factory.mktemp("pki")
    ca, other = make_ca(d / "ca", "machi-ca"), make_ca(d / "other", "other-ca")
    server = issue(ca, d / "ca", "broker", server=True)
    return ca, server, issue(ca, d / "ca", "meter-1"), issue(other, d / "other", "meter-1")


def _tls_broker(
    tmp_path: Path, pki: tuple[Cert, Cert, Cert, Cert], identity: bool
) -> Iterator[TlsBroker]:
    ca, server, meter, stranger = pki
    reg_path = tmp_path / "devices.json"
    secrets = build_registry(reg_path)
    topics = Topics(f"tls{uuid.uuid4().hex[:8]}")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    export(load(reg_path), topics, passwd, acl)
    port = free_port()
    conf = broker_conf(passwd, acl) + tls_listener_conf(
        port, ca.cert, server.cert, server.key, identity_from_cert=identity
    )
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf=conf)
    broker.start()
    yield TlsBroker(
        SecureBroker(broker, reg_path, passwd, acl, topics, secrets), port, ca, meter, stranger
    )
    broker.kill()


@pytest.fixture
def tls_pw(tmp_path: Path, pki: tuple[Cert, Cert, Cert, Cert]) -> Iterator[TlsBroker]:
    yield from _tls_broker(tmp_path, pki, identity=False)


@pytest.fixture
def tls_id(tmp_path: Path, pki: tuple[Cert, Cert, Cert, Cert]) -> Iterator[TlsBroker]:
    yield from _tls_broker(tmp_path, pki, identity=True)


def _ingest(tb: TlsBroker) -> Probe:
    ing = connect(tb.sb.settings("ingest"))  # on the plain loopback listener
    assert ing.ok and ing.subscribe(tb.sb.topics.telemetry_filter()) == 1
    return ing


def test_cert_and_password_listener(tls_pw: TlsBroker) -> None:
    tb, t = tls_pw, tls_pw.sb.topics
    pw = tb.sb.secrets["meter-1"]
    ing = _ingest(tb)
    try:
        dev = connect(tb.settings(tb.meter, "meter-1", pw))
        assert dev.ok, f"TLS login refused ({dev.connack}); log: {tb.sb.broker.log}"
        assert dev.publish(t.telemetry("energy_meter", "meter-1"), b"over tls") == 0
        assert ing.receive(2.0) == [(t.telemetry("energy_meter", "meter-1"), b"over tls")]
        dev.close()

        assert connect(tb.settings(None, "meter-1", pw)).connack is None  # no client cert
        assert connect(tb.settings(tb.stranger, "meter-1", pw)).connack is None  # other CA
        assert not connect(tb.settings(tb.meter, "meter-1", "wrong")).ok
        assert not connect(tb.settings(tb.meter)).ok  # cert alone is not enough here

        with editing(tb.sb.registry_path) as reg:
            reg.revoke("meter-1")
        tb.sb.reexport_and_reload()
        refused = connect(tb.settings(tb.meter, "meter-1", pw))
        assert not refused.ok
        assert ing.receive(0.5) == []
    finally:
        ing.close()


def test_cert_identity_listener(tls_id: TlsBroker) -> None:
    tb, t = tls_id, tls_id.sb.topics
    ing = _ingest(tb)
    try:
        dev = connect(tb.settings(tb.meter))  # no password: the CN is the username
        assert dev.ok, f"TLS login refused ({dev.connack}); log: {tb.sb.broker.log}"
        assert dev.publish(t.telemetry("energy_meter", "meter-1"), b"cn") == 0
        assert ing.receive(2.0) == [(t.telemetry("energy_meter", "meter-1"), b"cn")]
        # the ACL of CN=meter-1 applies
        assert dev.publish(t.telemetry("energy_meter", "meter-2"), b"forged") == 0x87
        dev.close()
        assert connect(tb.settings(None)).connack is None
        assert connect(tb.settings(tb.stranger)).connack is None

        with editing(tb.sb.registry_path) as reg:
            reg.revoke("meter-1")
        tb.sb.reexport_and_reload()
        # Limitation of this mode: without a CRL the revoked certificate still completes
        # TLS, but its ACL block is gone, so it can publish nothing.
        late = connect(tb.settings(tb.meter))
        assert late.ok, "mosquitto now refuses revoked CNs: update docs/security.md"
        assert late.publish(t.telemetry("energy_meter", "meter-1"), b"late") == 0x87
        late.close()
        assert ing.receive(1.0) == []
    finally:
        ing.close()
