"""``machi alerts run``: alert episodes in, notifications out, escalation until acked.

Two threads besides paho's network loop:

* the consumer takes alert messages (QoS 1, persistent session, manual ack), stores each
  one (alert row + its first tier's intents, one transaction) and only then acks it.
  Every instance consumes every message; the deterministic alert id makes the copies
  collapse in the store.
* the leader loop takes or renews the lease; while it leads it records due escalations
  and reminders, sends the notifications the store holds (a pool of senders, each
  attempt counted in the store before the channel gets it) and writes ``alert_state``
  points to InfluxDB.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import Counter as Tally
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import paho.mqtt.client as mqtt
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from sqlalchemy.exc import SQLAlchemyError

from alerts import message
from alerts.channels import ChannelError, Channels, display, recipient_key, scheme_of
from alerts.options import AlertsOptions, default_instance
from alerts.rules import Rules, Tier
from alerts.store import AlertStore, Recipient
from contract.events import ALERT_STATE, ALERTS_STATS, decode_alert
from contract.ids import ID_RE
from contract.influx import InfluxError, InfluxV1
from contract.lineprotocol import line
from contract.mqtt import MqttOptions, connect, make_client
from contract.options import settings_of
from contract.topics import Topics

log = logging.getLogger("machi.alerts")

__all__ = ["AlertsService", "Metrics"]

STATS_INTERVAL_S = 10.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class Metrics:
    """The Prometheus metrics of one instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "machi_alerts_messages_total", "alert messages by outcome", ["outcome"], registry=r
        )
        self.rejected = Counter(
            "machi_alerts_rejected_total", "malformed alert messages", ["reason"], registry=r
        )
        self.sent = Counter(
            "machi_alerts_notifications_sent_total",
            "notifications delivered",
            ["scheme"],
            registry=r,
        )
        self.failures = Counter(
            "machi_alerts_channel_failures_total",
            "failed delivery attempts (retried with backoff)",
            ["scheme"],
            registry=r,
        )
        self.escalations = Counter(
            "machi_alerts_escalations_total", "alerts handed to the next tier", registry=r
        )
        self.reminders = Counter(
            "machi_alerts_reminders_total", "reminders of the last tier", registry=r
        )
        self.repeats = Counter(
            "machi_alerts_possible_repeats_total",
            "notifications resent because a previous leader died while sending them",
            registry=r,
        )
        self.leader = Gauge("machi_alerts_leader", "1 while this instance leads", registry=r)
        self.connected = Gauge("machi_alerts_mqtt_connected", "1 while connected", registry=r)


class AlertsService:
    def __init__(self, opts: AlertsOptions, rules: Rules, store: AlertStore | None = None) -> None:
        self.opts = opts
        self.rules = rules
        self.settings = settings_of(opts)
        self.topics = Topics(self.settings.topic_prefix)
        self.store = store or AlertStore.open(opts.alerts_db)
        secret = opts.hmac_secret.get_secret_value() if opts.hmac_secret else None
        self.channels = Channels(secret, opts.send_timeout_s)
        self.urls = {recipient_key(u): u for u in rules.urls()}
        self.metrics = Metrics()
        self.influx = InfluxV1.from_settings(self.settings, timeout=10.0)
        self.holder = opts.instance or default_instance()
        self.epoch: int | None = None
        self._lease_until = 0.0
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._inflight: set[int] = set()
        self._inherited: set[int] = set()
        self._tally: Tally[tuple[str, str]] = Tally()  # (scheme, sent|failures)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(opts.senders, thread_name_prefix="alerts-send")
        self._threads: list[threading.Thread] = []
        self._mqtt_opts = MqttOptions(
            client_id=opts.client_id, persistent=True, manual_ack=True, receive_maximum=100
        )
        self.client, self._url = make_client(self.settings, self._mqtt_opts)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self._queue.put(msg)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self.opts.metrics_port >= 0:
            server, _t = start_http_server(
                self.opts.metrics_port, addr=self.opts.metrics_host, registry=self.metrics.registry
            )
            log.info("metrics", extra={"fields": {"port": server.server_port}})
        for name, target in (
            ("alerts-consume", self._consume),
            ("alerts-lease", self._lease),
            ("alerts-lead", self._lead),
            ("alerts-report", self._reporter),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        connect(self.client, self._url, self._mqtt_opts)
        self.client.loop_start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=30)
        self._pool.shutdown(wait=True)
        if self.epoch is not None:
            try:
                self.store.release(self.holder)
            except SQLAlchemyError as exc:
                log.warning("lease not released", extra={"fields": {"error": str(exc)}})
        self.client.disconnect()
        self.client.loop_stop()
        self.channels.close()
        self.influx.close()
        self.store.close()

    # -- consumer -------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any = None
    ) -> None:
        if rc.is_failure:
            log.error("MQTT connect refused", extra={"fields": {"reason": str(rc)}})
            return
        topic = f"{self.topics.prefix}/v1/alerts/+/+"
        client.subscribe([(topic, 1)])
        self.metrics.connected.set(1)
        log.info(
            "connected",
            extra={"fields": {"subscription": topic, "session_present": flags.session_present}},
        )

    def _on_disconnect(self, *_a: Any) -> None:
        self.metrics.connected.set(0)

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if not self.handle(msg.topic, bytes(msg.payload)):
                return  # stopping before the alert is durable: left for redelivery
            if msg.qos > 0:
                self.client.ack(msg.mid, msg.qos)

    def handle(self, topic: str, payload: bytes) -> bool:
        """Store one alert message; True once it may be acknowledged."""
        head = f"{self.topics.prefix}/v1/alerts/"
        parts = topic[len(head) :].split("/") if topic.startswith(head) else []
        try:
            if len(parts) != 2 or not all(ID_RE.match(p) for p in parts):
                raise ValueError(f"{topic!r} is not an alert topic")
            a = decode_alert(payload)
            if a.device_id != parts[1]:
                raise ValueError(f"payload device_id {a.device_id!r} != topic {parts[1]!r}")
        except (
            msgspec.ValidationError,
            msgspec.DecodeError,
            UnicodeDecodeError,
            ValueError,
        ) as exc:
            self._reject(topic, payload, exc)
            return True
        event = msgspec.structs.asdict(a)
        ridx = self.rules.route_for(a.type, a.site)
        tier = self.rules.routes[ridx].tiers[0] if ridx is not None else None
        delay = 0.2
        while not self._stop.is_set():
            try:
                outcome = self.store.record(
                    event,
                    route=ridx,
                    priority=self.rules.priority(a.type),
                    ack_within_s=tier.ack_within_s if tier else None,
                    recipients=self._recipients(tier),
                    now_ms=_now_ms(),
                )
            except SQLAlchemyError as exc:
                log.warning(
                    "alert store unavailable, retrying", extra={"fields": {"error": str(exc)[:300]}}
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 10)
                continue
            self.metrics.messages.labels(outcome).inc()
            if outcome in ("opened", "unrouted", "resolved"):
                level = logging.WARNING if outcome == "unrouted" else logging.INFO
                log.log(level, f"alert {outcome}", extra={"fields": _brief(event)})
            if outcome == "opened" and self._leading():
                self._dispatch_soon()
            else:
                self._wake.set()
            return True
        return False

    def _dispatch_soon(self) -> None:
        """Send a new alert's first tier from the consumer thread (one thread hop less
        than waking the leader loop; the leader loop would also pick it up)."""
        try:
            self._dispatch()
        except SQLAlchemyError as exc:
            log.warning("alert store error", extra={"fields": {"error": str(exc)[:300]}})
            self._wake.set()

    def _reject(self, topic: str, payload: bytes, exc: Exception) -> None:
        reason = (
            "schema"
            if isinstance(exc, msgspec.ValidationError)
            else (
                "invalid_json"
                if isinstance(exc, msgspec.DecodeError | UnicodeDecodeError)
                else "topic"
            )
        )
        self.metrics.rejected.labels(reason).inc()
        self.metrics.messages.labels("rejected").inc()
        record = {
            "received_ms": _now_ms(),
            "topic": topic[:300],
            "reason": reason,
            "detail": str(exc)[:500],
            "payload": payload[:65536].decode("utf-8", "replace"),
        }
        log.warning(
            "rejected alert message",
            extra={"fields": {k: v for k, v in record.items() if k != "payload"}},
        )
        path: Path = self.opts.dead_letter_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _recipients(self, tier: Tier | None) -> list[Recipient]:
        if tier is None:
            return []
        return [Recipient(recipient_key(u), display(u)) for u in tier.notify]

    # -- leader ---------------------------------------------------------------------

    def _leading(self) -> bool:
        return self.epoch is not None and time.monotonic() < self._lease_until

    def _lease(self) -> None:
        """Renews (or takes) the lease on its own thread, so slow work never costs it."""
        while not self._stop.is_set():
            self._renew(time.monotonic())
            self._stop.wait(self.opts.lease_s / 4)

    def _lead(self) -> None:
        while not self._stop.is_set():
            if self._leading():
                try:
                    self._escalate()
                    self._dispatch()
                except SQLAlchemyError as exc:
                    log.warning("alert store error", extra={"fields": {"error": str(exc)[:300]}})
            self._wake.wait(self.opts.tick_s)
            self._wake.clear()

    def _reporter(self) -> None:
        """InfluxDB points on their own thread: a slow InfluxDB never delays a notification."""
        next_stats = time.monotonic() + STATS_INTERVAL_S
        while not self._stop.wait(1.0):
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_INTERVAL_S
                self._write_stats()
            if self._leading():
                try:
                    self._report()
                except SQLAlchemyError as exc:
                    log.warning("alert store error", extra={"fields": {"error": str(exc)[:300]}})

    def _renew(self, now: float) -> None:
        try:
            epoch = self.store.acquire(self.holder, int(self.opts.lease_s * 1000), _now_ms())
            inherited = (
                self.store.in_flight() if epoch is not None and epoch != self.epoch else None
            )
        except SQLAlchemyError as exc:
            log.warning("lease renewal failed", extra={"fields": {"error": str(exc)[:300]}})
            return  # keep acting until the lease we hold runs out
        if epoch is not None:
            if inherited is not None:
                # Handed to a channel by a previous leader, outcome never recorded: the
                # only notifications that may now be repeated.
                with self._lock:
                    self._inherited = set(inherited)
                log.info(
                    "leader",
                    extra={"fields": {"instance": self.holder, "epoch": epoch,
                                      "resending": len(inherited)}},
                )  # fmt: skip
            self._lease_until = now + self.opts.lease_s * 0.8
        elif self.epoch is not None:
            log.warning("leadership lost", extra={"fields": {"instance": self.holder}})
        elif not getattr(self, "_standby_logged", False):
            self._standby_logged = True
            log.info("standby", extra={"fields": {"instance": self.holder}})
        self.epoch = epoch
        self.metrics.leader.set(1 if epoch is not None else 0)

    def _escalate(self) -> None:
        now = _now_ms()
        for row in self.store.due(now):
            ridx = self.rules.route_for(row["type"], row["site"])
            if ridx is None:
                continue
            tiers = self.rules.routes[ridx].tiers
            if row["tier"] < len(tiers):
                tier, kind = row["tier"] + 1, "notify"
            else:
                tier, kind = len(tiers), f"remind{row['reminders'] + 1}"
            t = tiers[tier - 1]
            step = self.store.step(
                row,
                tier,
                kind,
                now + int(t.ack_within_s * 1000),
                self._recipients(t),
                self.holder,
                now,
            )
            if step is None:
                continue
            (self.metrics.escalations if kind == "notify" else self.metrics.reminders).inc()
            log.info(
                "alert escalated" if kind == "notify" else "alert reminder",
                extra={
                    "fields": {
                        "alert_id": row["alert_id"],
                        "tier": tier,
                        "kind": kind,
                        "waited_s": round((now - row["opened_ms"]) / 1000, 3),
                    }
                },
            )

    def _dispatch(self) -> None:
        for r in self.store.pending(_now_ms()):
            nid = int(r["id"])
            with self._lock:
                if nid in self._inflight:
                    continue
                self._inflight.add(nid)  # taken by this dispatcher; released if not sent
            if not self._dispatch_one(r, nid):
                with self._lock:
                    self._inflight.discard(nid)

    def _dispatch_one(self, r: dict[str, Any], nid: int) -> bool:
        """Hand one pending notification to a sender; False when it is not to be sent."""
        if r["alert_state"] != "open":
            self.store.drop(nid, f"alert {r['alert_state']} before delivery")
            return False
        url = self.urls.get(r["recipient"])
        if url is None:
            self.store.drop(nid, "recipient no longer in the rules")
            return False
        with self._lock:
            repeat = nid in self._inherited
            self._inherited.discard(nid)
        if repeat:
            self.metrics.repeats.inc()
            log.warning(
                "resending a notification a previous leader may have sent",
                extra={
                    "fields": {
                        "alert_id": r["alert_id"],
                        "tier": r["tier"],
                        "channel": r["channel"],
                    }
                },
            )
        self._pool.submit(self._send, r, url)
        return True

    def _send(self, r: dict[str, Any], url: str) -> None:
        nid = int(r["id"])
        try:
            if not self.store.claim(nid, int(r["attempts"]), self.holder, _now_ms()):
                return
            alert = self.store.get(r["alert_id"])
            if alert is None:
                return
            n = message.build(
                alert, int(r["tier"]), r["attempt_kind"], r["recipient"],
                self.opts.api_base_url, self.opts.include_values,
            )  # fmt: skip
            scheme = scheme_of(url)
            try:
                self.channels.send(url, n)
            except ChannelError as exc:
                attempts = int(r["attempts"]) + 1
                backoff = min(self.opts.retry_max_s, self.opts.retry_base_s * 2 ** (attempts - 1))
                self.store.failed(nid, str(exc), _now_ms() + int(backoff * 1000))
                self.metrics.failures.labels(scheme).inc()
                self._count(scheme, "failures")
                log.warning(
                    "notification failed, will retry",
                    extra={
                        "fields": {
                            "alert_id": r["alert_id"],
                            "tier": r["tier"],
                            "channel": r["channel"],
                            "attempts": attempts,
                            "retry_in_s": backoff,
                            "error": str(exc)[:300],
                        }
                    },
                )
                return
            now = _now_ms()
            self.store.sent(nid, now)
            self.metrics.sent.labels(scheme).inc()
            self._count(scheme, "sent")
            log.info(
                "notification sent",
                extra={
                    "fields": {
                        "alert_id": r["alert_id"],
                        "type": alert["type"],
                        "tier": r["tier"],
                        "kind": r["attempt_kind"],
                        "channel": r["channel"],
                        "after_open_s": round((now - alert["opened_ms"]) / 1000, 3),
                    }
                },
            )
        except SQLAlchemyError as exc:
            log.warning(
                "alert store error while sending", extra={"fields": {"error": str(exc)[:300]}}
            )
        except Exception:
            log.exception("notification crashed", extra={"fields": {"alert_id": r["alert_id"]}})
        finally:
            with self._lock:
                self._inflight.discard(nid)

    def _count(self, scheme: str, what: str) -> None:
        with self._lock:
            self._tally[(scheme, what)] += 1

    def _write_stats(self) -> None:
        """``alerts_stats``: cumulative sent / failures per scheme (the fleet board)."""
        with self._lock:
            schemes = sorted({s for s, _ in self._tally})
            counts = dict(self._tally)
        now = _now_ms()
        lines = [
            line(
                ALERTS_STATS,
                {"instance": self.holder, "scheme": s},
                {"sent": counts.get((s, "sent"), 0), "failures": counts.get((s, "failures"), 0)},
                now,
            )
            for s in schemes
        ]
        if lines:
            with contextlib.suppress(httpx.HTTPError):
                self.influx.write_lines("\n".join(lines).encode())

    def _report(self) -> None:
        rows = self.store.dirty()
        if not rows:
            return
        lines = [_state_line(r) for r in rows]
        try:
            resp = self.influx.write_lines("\n".join(lines).encode())
        except httpx.HTTPError as exc:
            log.warning("alert_state write failed", extra={"fields": {"error": str(exc)}})
            return
        if resp.status_code == 404:
            with contextlib.suppress(httpx.HTTPError, InfluxError):
                self.influx.create_database()
            return
        if resp.status_code != 204:
            log.warning(
                "alert_state write refused",
                extra={"fields": {"status": resp.status_code, "body": resp.text[:200]}},
            )
            if resp.status_code != 400:
                return
        self.store.reported(rows)


def _state_line(r: dict[str, Any]) -> str:
    ack_s = None if r["acked_ms"] is None else max(0.0, (r["acked_ms"] - r["opened_ms"]) / 1000)
    return line(
        ALERT_STATE,
        {
            "device_id": r["device_id"],
            "site": r["site"],
            "type": r["type"],
            "priority": r["priority"],
        },
        {
            "alert_id": r["alert_id"],
            "state": r["state"],
            "tier": int(r["tier"]),
            "escalated": int(r["tier"]) > 1,
            "ack_s": ack_s,
        },
        int(r["episode_ms"]),
    )


def _brief(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("device_id", "site", "type", "state", "episode_ms")}
