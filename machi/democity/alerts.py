"""The demo's alerting: `machi alerts run` with a local SMTP server and webhook receiver.

One demo fall is raised after the backfill; nobody acknowledges it within tier 1's
``ack_within_s``, so it escalates to tier 2; then the demo acknowledges it through the
API. :meth:`DemoAlerts.poll` returns the lines to print as that happens.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import httpx

from contract.schema import make_message
from contract.settings import Settings
from machi.receivers import SmtpReceiver, WebhookReceiver
from machi.servers import AlertsProcess
from machi.testkit import Publisher

DEMO_DEVICE = "demo-fall-01"
ACK1_S = 10


class DemoAlerts:
    def __init__(self, work: Path, settings: Settings, api_url: str, api_key: str) -> None:
        self.work = work
        self.settings = settings
        self.api_url = api_url
        self.api_key = api_key
        self.db = f"sqlite:///{work / 'alerts.db'}"
        self.smtp = SmtpReceiver().start()
        self.hook = WebhookReceiver().start()
        self.secret = secrets.token_urlsafe(16)
        self.proc: AlertsProcess | None = None
        self.t0: float | None = None
        self.alert_id: str | None = None
        self._said: set[str] = set()

    def start(self) -> AlertsProcess:
        rules = self.work / "alert-rules.toml"
        tier1 = [self.smtp.url("care-desk@demo.machi"), self.hook.url("/desk", "hmac+http")]
        rules.write_text(
            '[[route]]\ntypes = ["fall", "spo2_low", "hr_high", "hr_low"]\nsites = ["*"]\n'
            f"tiers = [\n  {{ notify = {json.dumps(tier1)}, ack_within_s = {ACK1_S} }},\n"
            f'  {{ notify = ["{self.hook.url("/city")}"], ack_within_s = 60 }},\n]\n\n'
            '[[route]]\ntypes = ["*"]\nsites = ["*"]\n'
            f'tiers = [ {{ notify = ["{self.hook.url("/desk-low")}"], ack_within_s = 3600 }} ]\n'
        )
        s = self.settings
        self.proc = AlertsProcess(
            self.work / "alerts",
            ["--mqtt-url", s.mqtt_url, "--influx-url", s.influx_url, "--influx-db", s.influx_db,
             "--topic-prefix", s.topic_prefix, "--rules", str(rules)],
            env={"MACHI_ALERTS_DB": self.db, "MACHI_ALERTS_HMAC_SECRET": self.secret,
                 "MACHI_ALERTS_API_BASE_URL": self.api_url,
                 "MACHI_ALERTS_DEAD_LETTER_FILE": str(self.work / "alerts-rejected.jsonl")},
        )  # fmt: skip
        self.proc.start(timeout=60)
        return self.proc

    def raise_fall(self) -> None:
        pub = Publisher(self.settings, "machi-demo-fall")
        self.t0 = time.time()
        reading = {"t": int(self.t0 * 1000), "fall": True, "heart_rate_bpm": 92.0}
        pub.publish(make_message("wearable", DEMO_DEVICE, "minato", 1, [reading]))
        pub.close()

    def _once(self, key: str, text: str, out: list[str]) -> None:
        if key not in self._said:
            self._said.add(key)
            out.append(text)

    def poll(self) -> list[str]:
        """New lines about the demo fall: deliveries, the escalation, the acknowledgement."""
        out: list[str] = []
        if self.t0 is None:
            return out
        t0 = self.t0
        for m in self.smtp.mails:
            if DEMO_DEVICE in m.body:
                to = ", ".join(m.rcpt_tos)
                text = f"  tier 1  email to {to} accepted {m.at - t0:.2f} s after the fall"
                self._once("mail", f"{text}: {m.subject!r}", out)
        for p in self.hook.at("/desk"):
            body = p.json() or {}
            if body.get("device_id") == DEMO_DEVICE:
                self.alert_id = body["alert_id"]
                ok = "valid" if p.signature_ok(self.secret) else "INVALID"
                text = f"  tier 1  signed webhook /desk ({ok} signature) {p.at - t0:.2f} s"
                self._once("desk", f"{text} after the fall: alert {self.alert_id}", out)
        for p in self.hook.at("/city"):
            if f"device_id: {DEMO_DEVICE}" not in ((p.json() or {}).get("message") or ""):
                continue
            text = f"  tier 2  nobody acknowledged within {ACK1_S} s: escalated to webhook"
            self._once("city", f"{text} /city {p.at - t0:.2f} s after the fall", out)
            if self.alert_id and "ack" not in self._said:
                r = httpx.post(
                    f"{self.api_url}/v1/alerts/{self.alert_id}/ack",
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    json={"note": "demo: care desk on the way"},
                    timeout=10,
                )
                state = r.json().get("state")
                text = f"  ack     POST /v1/alerts/{self.alert_id}/ack -> {r.status_code} {state}"
                self._once("ack", f"{text}: escalation stopped", out)
        return out

    @property
    def done(self) -> bool:
        return "ack" in self._said

    def summary(self) -> str:
        return (
            f"  receivers: {len(self.smtp.mails)} emails, {len(self.hook.at('/desk'))} signed "
            f"webhooks, {len(self.hook.at('/city'))} tier-2 webhooks, "
            f"{len(self.hook.at('/desk-low'))} device-problem webhooks"
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        self.smtp.stop()
        self.hook.stop()
