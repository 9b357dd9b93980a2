"""``machi bench alerts``: fall -> email and webhook latency under background load.

Starts Mosquitto, InfluxDB, ``machi ingest``, ``machi events run`` and ``machi alerts
run`` (real processes), an SMTP server and a webhook receiver on loopback. While
``--wearables`` wearables report at ``--rate`` Hz, ``--falls`` falls are published (each
from its own device); for each one it measures the time from the fall's publish until
the SMTP server accepted the mail and until the webhook receiver had the POST.

The ceiling, measured in the same run under the same load: a bare Apprise send of the
same notification to the same SMTP server and webhook from this process. The ratio says
what the whole path (broker, events worker, store, leader, channel) adds on top of the
channel itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from alerts import message
from alerts.channels import Channels
from alerts.store import AlertStore
from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import make_message
from contract.settings import Settings
from machi.receivers import SmtpReceiver, WebhookReceiver
from machi.servers import AlertsProcess, EventsProcess, Influxd, IngestProcess, Mosquitto
from machi.testkit import Publisher


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--falls", type=int, default=200, help="falls to publish (default 200)")
    p.add_argument("--wearables", type=int, default=1000, help="background wearables (1000)")
    p.add_argument("--rate", type=float, default=1.0, help="readings/s per wearable (1)")
    p.add_argument("--fall-interval", type=float, default=0.25, help="seconds between falls")
    p.add_argument("--target-s", type=float, default=3.0, help="p99 target (default 3 s)")
    p.add_argument("--workdir", type=Path, help="data dir (default: a temp dir)")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))] if s else float("nan")


def _background(settings: Settings, n: int, rate: float, stop: threading.Event) -> list[int]:
    """Each wearable sends one reading per 1/rate s, the fleet spread evenly over the
    period (wearables are not synchronised); returns [messages sent]."""
    sent = [0]
    slices = 20

    def loop() -> None:
        pub = Publisher(settings, "bench-background", max_inflight=2000)
        seq = 0
        period = 1.0 / rate
        per_slice = -(-n // slices)
        next_t = time.monotonic()
        while not stop.is_set():
            seq += 1
            for k in range(slices):
                now = int(time.time() * 1000)
                for i in range(k * per_slice, min(n, (k + 1) * per_slice)):
                    reading = {"t": now, "heart_rate_bpm": 60.0 + i % 30, "battery_pct": 80.0}
                    pub.publish(make_message("wearable", f"bg-{i:04d}", "hama", seq, [reading]))
                    sent[0] += 1
                next_t += period / slices
                stop.wait(max(0.0, next_t - time.monotonic()))
        pub.close()

    threading.Thread(target=loop, daemon=True, name="background").start()
    return sent


_DEVICE = re.compile(r"device_id: (\S+)")


class _AlertTap:
    """Records when each device's first alert message reached the broker's subscribers."""

    def __init__(self, settings: Settings) -> None:
        self.first: dict[str, float] = {}
        opts = MqttOptions(client_id="bench-alert-tap")
        self.client, url = make_client(settings, opts)
        ready = threading.Event()

        def on_connect(c: Any, *_a: Any) -> None:
            c.subscribe(f"{settings.topic_prefix}/v1/alerts/+/+", qos=1)
            ready.set()

        def on_message(_c: Any, _u: Any, m: Any) -> None:
            self.first.setdefault(m.topic.rsplit("/", 1)[1], time.time())

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        connect(self.client, url, opts)
        self.client.loop_start()
        ready.wait(15)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _device(text: str) -> str | None:
    m = _DEVICE.search(text)
    return m.group(1) if m else None


def _ceiling(smtp: SmtpReceiver, hook: WebhookReceiver, n: int) -> tuple[list[float], list[float]]:
    """The channel alone: machi's own channel code sending the same notification."""
    alert = {"alert_id": "0" * 24, "type": "fall", "priority": "high", "device_id": "ceiling",
             "site": "hama", "episode_ms": int(time.time() * 1000), "value": 1.0}  # fmt: skip
    note = message.build(alert, 1, "notify", "ceiling0", "http://127.0.0.1", False)
    channels = Channels(None)
    mail: list[float] = []
    web: list[float] = []
    for url, out in ((smtp.url("ceiling@care.example"), mail), (hook.url("/ceiling"), web)):
        for _ in range(n):
            t0 = time.perf_counter()
            channels.send(url, note)
            out.append(time.perf_counter() - t0)
    channels.close()
    return mail, web


def run(args: argparse.Namespace) -> int:
    logging.getLogger("apprise").setLevel(logging.WARNING)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="machi-bench-alerts-"))
    procs: list = []
    stop = threading.Event()
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        try:
            mosq, influxd = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
            for s in (mosq, influxd):
                s.start()
                procs.append(s)
            settings = Settings(mqtt_url=mosq.url, influx_url=influxd.url, influx_db="bench",
                                topic_prefix="city")  # fmt: skip
            conn = ["--mqtt-url", mosq.url, "--influx-url", influxd.url,
                    "--influx-db", "bench", "--topic-prefix", "city"]  # fmt: skip
            rules = work / "rules.toml"
            rules.write_text(
                '[[route]]\ntypes = ["fall"]\nsites = ["*"]\n'
                f'tiers = [{{ notify = ["{smtp.url("desk@care.example")}", '
                f'"{hook.url("/desk")}"], ack_within_s = 3600 }}]\n'
            )
            # Simulated devices, no registry: open mode, explicitly (docs/security.md).
            ingest = IngestProcess(
                work / "ingest", mosq.url, influxd.url, "bench", "city", open_mode=True
            )
            events = EventsProcess(work / "events", [*conn, "--open-mode"])
            alerts = AlertsProcess(
                work / "alerts",
                [*conn, "--rules", str(rules), "--alerts-db", f"sqlite:///{work}/alerts.db",
                 "--dead-letter-file", str(work / "rejected.jsonl")],
            )  # fmt: skip
            for p in (ingest, events, alerts):
                p.start(timeout=60)
                procs.append(p)
            print(f"servers up in {work}; background: {args.wearables} wearables at {args.rate} Hz")
            sent = _background(settings, args.wearables, args.rate, stop)
            time.sleep(5)  # let the background reach steady state
            tap = _AlertTap(settings)
            pub = Publisher(settings, "bench-falls")
            published: dict[str, float] = {}
            for i in range(args.falls):
                dev = f"fall-{i:04d}"
                now = time.time()
                published[dev] = now
                reading = {"t": int(now * 1000), "fall": True}
                pub.publish(make_message("wearable", dev, "hama", 1, [reading]))
                time.sleep(args.fall_interval)
            pub.close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                len(smtp.to("desk@care.example")) < args.falls or len(hook.at("/desk")) < args.falls
            ):
                time.sleep(0.2)
            mail_lat, web_lat, both = [], [], []
            mails = {_device(m.body): m.at for m in smtp.to("desk@care.example")}
            posts = {_device((p.json() or {}).get("message", "")): p.at for p in hook.at("/desk")}
            for d, t in published.items():
                if d in mails:
                    mail_lat.append(mails[d] - t)
                if d in posts:
                    web_lat.append(posts[d] - t)
                if d in mails and d in posts:
                    both.append(max(mails[d], posts[d]) - t)
            tap.close()
            published_lat = [tap.first[d] - t for d, t in published.items() if d in tap.first]
            stored_lat = []
            store = AlertStore.open(f"sqlite:///{work}/alerts.db")
            for a in store.unresolved(limit=10 * args.falls):
                if a["device_id"] in published:
                    stored_lat.append(a["opened_ms"] / 1000 - published[a["device_id"]])
            store.close()
            load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            ceil_mail, ceil_web = _ceiling(smtp, hook, min(args.falls, 100))
            stop.set()
        finally:
            stop.set()
            for p in reversed(procs):
                p.stop()

    def row(name: str, xs: list[float]) -> str:
        top = max(xs, default=float("nan"))
        return (
            f"{name:<30} n={len(xs):<4} p50={_pct(xs, 50):7.3f}s  "
            f"p99={_pct(xs, 99):7.3f}s  max={top:7.3f}s"
        )

    print(f"background telemetry messages sent: {sent[0]:,}; load average {load}")
    print(row("fall -> alert on the stream", published_lat))
    print(row("fall -> stored (alerts)", stored_lat))
    print(row("fall -> SMTP accepted", mail_lat))
    print(row("fall -> webhook POST", web_lat))
    print(row("fall -> both delivered", both))
    print(row("ceiling: channel alone, SMTP", ceil_mail))
    print(row("ceiling: channel alone, JSON", ceil_web))
    if mail_lat and web_lat:
        rm = statistics.median(mail_lat) / statistics.median(ceil_mail)
        rw = statistics.median(web_lat) / statistics.median(ceil_web)
        print(f"ratio p50 path / ceiling: mail {rm:.1f}x, webhook {rw:.1f}x")
    ok = len(both) == args.falls and _pct(both, 99) <= args.target_s
    verdict = "met" if ok else "MISSED"
    print(f"delivered {len(both)}/{args.falls}; p99 target {args.target_s} s: {verdict}")
    return 0 if ok else 1
