"""A real mosquitto that authenticates against files exported from a device registry."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from contract.settings import Settings
from contract.topics import Topics
from devices.mosquitto_files import broker_conf, export
from devices.registry import Registry, editing, load, save
from machi.servers import Mosquitto


@dataclass
class SecureBroker:
    """A broker, its registry file and the secrets handed out (as a device owner would)."""

    broker: Mosquitto
    registry_path: Path
    passwd: Path
    acl: Path
    topics: Topics
    secrets: dict[str, str] = field(default_factory=dict)

    def settings(self, user: str | None, secret: str | None = None) -> Settings:
        if user is None:
            url = f"mqtt://127.0.0.1:{self.broker.port}"
        else:
            pw = self.secrets[user] if secret is None else secret
            url = f"mqtt://{user}:{pw}@127.0.0.1:{self.broker.port}"
        return Settings(mqtt_url=url, topic_prefix=self.topics.prefix)

    def reexport_and_reload(self, timeout: float = 5.0) -> None:
        """What an operator does after a change: export, then SIGHUP the broker.

        mosquitto handles SIGHUP asynchronously, so this also rotates a ``sentinel``
        identity and returns once its new secret logs in: the reload has then happened.
        """
        from .probe import connect

        with editing(self.registry_path) as reg:
            sentinel = reg.rotate("sentinel")
        export(load(self.registry_path), self.topics, self.passwd, self.acl)
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while not connect(self.settings("sentinel", sentinel)).ok:
            assert time.monotonic() < deadline, f"broker did not reload; log: {self.broker.log}"
            time.sleep(0.05)


def build_registry(path: Path) -> dict[str, str]:
    """meter-1 and wear-1 connect themselves; gw-1 fronts meter-2 and bus-1."""
    reg = Registry()
    secrets: dict[str, str] = {}
    plan = [
        ("meter-1", "device", "energy_meter", "s1", ()),
        ("wear-1", "device", "wearable", "home-7", ()),
        ("ingest", "ingest", None, None, ()),
        ("events", "events", None, None, ()),
        ("api", "api", None, None, ()),
        ("sentinel", "api", None, None, ()),  # rotated to detect a finished reload
    ]
    for ident_id, role, kind, site, devs in plan:
        _, secret = reg.add(ident_id, role=role, kind=kind, site=site, devices=devs)
        assert secret is not None
        secrets[ident_id] = secret
    reg.add("meter-2", kind="energy_meter", site="s1", with_secret=False)
    reg.add("bus-1", kind="bus", site="route-a", with_secret=False)
    _, secret = reg.add("gw-1", role="agent", site="s1", devices=("meter-2", "bus-1"))
    assert secret is not None
    secrets["gw-1"] = secret
    save(reg, path)
    return secrets


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    reg_path = tmp_path / "devices.json"
    secrets = build_registry(reg_path)
    topics = Topics(f"sec{uuid.uuid4().hex[:8]}")
    passwd, acl = tmp_path / "auth" / "passwd", tmp_path / "auth" / "acl"
    export(load(reg_path), topics, passwd, acl)
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf=broker_conf(passwd, acl))
    broker.start()
    yield SecureBroker(broker, reg_path, passwd, acl, topics, secrets)
    broker.kill()
