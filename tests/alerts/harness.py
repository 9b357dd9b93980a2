"""The alerting path as real processes: events workers, `machi alerts run`, `machi api`,
with an SMTP server and a webhook receiver on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from api.auth import key_id
from contract.schema import make_message
from contract.settings import Settings
from machi.receivers import Post, SmtpReceiver, WebhookReceiver
from machi.servers import AlertsProcess, ApiProcess, EventsProcess, MachiProcess
from machi.testkit import Publisher

SECRET = "test-hmac-secret-0123456789"
CARE = "care-key-0123456789abcdef"
CARE_ID = key_id(CARE)


class Telemetry:
    """Publishes wearable readings and raw alert messages (QoS 1, acknowledged)."""

    def __init__(self, settings: Settings) -> None:
        self.pub = Publisher(settings, f"telemetry-{time.monotonic_ns()}")

    def send(self, kind: str, dev: str, seq: int, readings: list[dict], site: str = "hama") -> None:
        self.pub.publish(make_message(kind, dev, site, seq, readings))
        assert self.pub.flush(10)

    def raw(self, topic: str, payload: bytes) -> None:
        self.pub.publish_raw(topic, payload)
        assert self.pub.flush(10)

    def close(self) -> None:
        self.pub.close()


def write_rules(
    path: Path,
    smtp: SmtpReceiver,
    hook: WebhookReceiver,
    ack1: float,
    ack2: float,
) -> Path:
    """Falls: tier 1 = email + JSON webhook + signed webhook, tier 2 = another webhook.
    Device problems: one webhook."""
    t1 = [smtp.url("desk@care.example"), hook.url("/t1"), hook.url("/t1s", "hmac+http")]
    path.write_text(
        f"""
[[route]]
types = ["fall", "spo2_low"]
sites = ["*"]
tiers = [
  {{ notify = {json.dumps(t1)}, ack_within_s = {ack1} }},
  {{ notify = ["{hook.url("/t2")}"], ack_within_s = {ack2} }},
]

[[route]]
types = ["silent", "battery_low", "off_body"]
sites = ["*"]
tiers = [ {{ notify = ["{hook.url("/dev")}"], ack_within_s = 600 }} ]
"""
    )
    return path


class Rig:
    """Starts processes in ``workdir`` against the test's broker/database; stops them."""

    def __init__(self, workdir: Path, settings: Settings, rules: Path, db_url: str) -> None:
        self.workdir = workdir
        self.settings = settings
        self.rules = rules
        self.db_url = db_url
        self.procs: list[MachiProcess] = []
        self.api: ApiProcess | None = None

    def conn_args(self) -> list[str]:
        s = self.settings
        return ["--mqtt-url", s.mqtt_url, "--influx-url", s.influx_url,
                "--influx-db", s.influx_db, "--topic-prefix", s.topic_prefix]  # fmt: skip

    def events(self, name: str = "ev", *extra: str) -> EventsProcess:
        p = EventsProcess(
            self.workdir / name, [*self.conn_args(), "--client-id", name, "--open-mode", *extra]
        )
        p.start(timeout=60)
        self.procs.append(p)
        return p

    def alerts_env(self) -> dict[str, str]:
        return {
            "MACHI_ALERTS_DB": self.db_url,
            "MACHI_ALERT_RULES": str(self.rules),
            "MACHI_ALERTS_HMAC_SECRET": SECRET,
            "MACHI_ALERTS_API_BASE_URL": "https://care.example/api",
            "MACHI_ALERTS_DEAD_LETTER_FILE": str(self.workdir / "alerts-rejected.jsonl"),
            "MACHI_ALERTS_TICK_S": "0.1",
        }

    def alerts(
        self, name: str = "alerts", *extra: str, env: dict[str, str] | None = None
    ) -> AlertsProcess:
        p = AlertsProcess(
            self.workdir / name,
            [*self.conn_args(), "--client-id", f"machi-alerts-{name}", *extra],
            env={**self.alerts_env(), **(env or {})},
            name=name,
        )
        p.start(timeout=60)
        self.procs.append(p)
        return p

    def start_api(self) -> ApiProcess:
        api = ApiProcess(
            self.workdir / "api",
            self.settings.influx_url,
            self.settings.influx_db,
            env={
                "MACHI_API_KEYS": f"{CARE}:care",
                "MACHI_API_AUDIT_LOG": str(self.workdir / "audit.jsonl"),
                "MACHI_ALERTS_DB": self.db_url,
            },
        )
        api.start(timeout=60)
        self.procs.append(api)
        self.api = api
        return api

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        assert self.api is not None
        headers = {"Authorization": f"Bearer {CARE}"}
        return httpx.request(method, self.api.url + path, headers=headers, timeout=10, **kw)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def by_device(posts: list[Post], device_id: str) -> list[Post]:
    return [p for p in posts if (p.json() or {}).get("device_id") == device_id]


def apprise_json(posts: list[Post], device_id: str) -> list[Post]:
    """Apprise json:// posts whose text names the device."""
    return [
        p for p in posts if f"device_id: {device_id}" in ((p.json() or {}).get("message") or "")
    ]
