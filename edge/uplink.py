"""The uplink: outbox rows -> central broker (QoS 1), deleted once ingest has stored them.

At most ``max_inflight`` messages are handed to paho unacknowledged. paho keeps them
across a lost connection and re-sends them (DUP) after it reconnects with backoff;
rows never handed over, or left after a crash, are read again from the outbox.

A PUBACK only means the broker holds the message in memory (a broker crash can still
lose it), so with ``require_confirmation`` a PUBACK marks the row *sent*, and the row is
deleted when ingest's storage confirmation (``{prefix}/v1/stored/{device_id}``) names
its seq. A sent row left unconfirmed past its due time is re-published, same bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from contract.confirm import StoredConfirmation, decode_confirmation
from contract.ids import ID_RE
from contract.mqtt import MqttOptions, connect, make_client
from contract.status import AgentStatus, encode_status
from contract.topics import Topics
from edge.config import EdgeConfig
from edge.outbox import Outbox

log = logging.getLogger("machi.edge.uplink")

#: Topics per SUBSCRIBE packet when (re)subscribing to every device's confirmations.
_SUBSCRIBE_CHUNK = 100
#: Seconds between looks for overdue confirmations (an indexed query, kept rare).
_OVERDUE_EVERY_S = 1.0


class Uplink:
    def __init__(self, cfg: EdgeConfig, outbox: Outbox) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.topics = Topics(cfg.settings.topic_prefix)
        self.status_topic = self.topics.status(cfg.agent_id)
        offline = AgentStatus(agent_id=cfg.agent_id, state="offline", t=0)
        self.opts = MqttOptions(
            client_id=f"machi-edge-{cfg.agent_id}",
            protocol=cfg.mqtt_protocol,
            will_topic=self.status_topic,
            will_payload=encode_status(offline),
        )
        self.client, self.url = make_client(cfg.settings, self.opts)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.wake = threading.Event()
        self.connected = threading.Event()
        self._inflight: dict[int, int] = {}  # mid -> outbox row id (pump thread only)
        self._high = 0  # highest row id handed to paho
        self._retry: list[int] = []  # rows the broker refused; sent again later
        self._acked: list[tuple[int, bool]] = []  # (mid, ok) from paho's thread
        self._acked_lock = threading.Lock()
        self.published = 0
        # Storage confirmations: the devices whose topic we follow, what arrived (paho
        # thread -> pump), and when to look for overdue rows next.
        self.confirming = cfg.require_confirmation
        self._stored_prefix = f"{self.topics.prefix}/v1/stored/"
        self._devices: set[str] = (
            cfg.served_devices() | set(outbox.devices()) if self.confirming else set()
        )
        self._subscribed: set[str] = set()
        self._confirms: list[StoredConfirmation] = []
        self._next_overdue = 0.0
        self.confirmed = 0  # readings confirmed stored in this run
        self.resent = 0  # messages re-published for want of a confirmation

    # -- paho callbacks (network thread): record and wake, never block ---------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.warning("broker refused the connection", extra={"fields": {"reason": str(rc)}})
            return
        log.info("connected to broker", extra={"fields": {"broker": self.url.redacted()}})
        # Agent sessions are not persistent: subscriptions are made again on each connect.
        self._subscribed = set()
        self._subscribe(sorted(self._devices))
        self.connected.set()
        self.wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None
    ) -> None:
        if self.connected.is_set():
            log.warning(
                "lost the broker; paho reconnects with backoff",
                extra={"fields": {"reason": str(rc)}},
            )
        self.connected.clear()

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._acked_lock:
            self._acked.append((mid, not rc.is_failure))
        self.wake.set()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device_id = msg.topic[len(self._stored_prefix) :]
        if not msg.topic.startswith(self._stored_prefix) or device_id not in self._devices:
            return
        try:
            conf = decode_confirmation(bytes(msg.payload))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            log.warning(
                "malformed storage confirmation ignored",
                extra={"fields": {"topic": msg.topic, "error": str(exc)[:200]}},
            )
            return
        if conf.device_id != device_id:
            log.warning(
                "confirmation for another device ignored", extra={"fields": {"topic": msg.topic}}
            )
            return
        with self._acked_lock:
            self._confirms.append(conf)
        self.wake.set()

    def _on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, rcs: Any, _p: Any) -> None:
        failed = [str(rc) for rc in rcs if getattr(rc, "is_failure", False)]
        if failed:
            log.error(
                "broker refused a confirmation subscription; those rows are re-sent after "
                "confirm_timeout_s until the ACL grants read on {prefix}/v1/stored/{device_id}",
                extra={"fields": {"reasons": failed}},
            )

    def _subscribe(self, devices: list[str]) -> None:
        """Follow the storage confirmations of ``devices`` (QoS 0, like their publisher)."""
        for i in range(0, len(devices), _SUBSCRIBE_CHUNK):
            chunk = devices[i : i + _SUBSCRIBE_CHUNK]
            rc, _mid = self.client.subscribe([(self.topics.stored(d), 0) for d in chunk])
            if rc == mqtt.MQTT_ERR_SUCCESS:
                self._subscribed.update(chunk)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        connect(self.client, self.url, self.opts)
        self.client.loop_start()

    def stop(self, drain_s: float = 3.0) -> None:
        """Publish offline, wait a little for outstanding PUBACKs, disconnect."""
        deadline = time.monotonic() + drain_s
        info = None
        if self.connected.is_set():
            info = self.publish_status(self.status("offline"))
        while time.monotonic() < deadline and (
            self._inflight or (info and not info.is_published())
        ):
            self.wake.wait(0.1)
            self.wake.clear()
            self._settle()
        self._settle()
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- pump (one thread) -------------------------------------------------------------

    def _settle(self) -> None:
        with self._acked_lock:
            acked, self._acked = self._acked, []
            confirms, self._confirms = self._confirms, []
        done: list[int] = []
        for mid, ok in acked:
            rid = self._inflight.pop(mid, None)
            if rid is None:
                continue  # a status message
            if ok:
                done.append(rid)
            else:
                log.warning("broker refused a message; will retry", extra={"fields": {"row": rid}})
                self._retry.append(rid)
        if done and self.confirming:
            self.published += self.outbox.mark_sent(done, self.cfg.confirm_timeout_s)
        elif done:
            self.published += self.outbox.ack(done)
        for conf in confirms:
            self.confirmed += self.outbox.confirm(conf.device_id, conf.seqs, conf.deadlettered)

    def pump(self) -> None:
        """Settle PUBACKs, then hand new outbox rows to paho while there is room."""
        self._settle()
        if not self.connected.is_set():
            return
        room = self.cfg.max_inflight - len(self._inflight)
        if room <= 0:
            return
        retry, self._retry = self._retry[:room], self._retry[room:]
        rows = self.outbox.fetch_ids(retry)
        if len(rows) < room:
            rows += self.outbox.fetch(self._high, room - len(rows))
        if len(rows) < room and self.confirming and time.monotonic() >= self._next_overdue:
            self._next_overdue = time.monotonic() + _OVERDUE_EVERY_S
            overdue = self.outbox.take_overdue(room - len(rows))
            if overdue:
                self.resent += len(overdue)
                log.info(
                    "re-publishing messages ingest has not confirmed stored",
                    extra={"fields": {"messages": len(overdue), "first_row": overdue[0].id}},
                )
            rows += overdue
        new = sorted({r.device_id for r in rows} - self._subscribed)
        if self.confirming and new:
            # A gateway can name a device the config does not list: follow it before sending.
            self._devices.update(d for d in new if ID_RE.match(d))
            self._subscribe(new)
        for row in rows:
            topic = self.topics.telemetry(row.kind, row.device_id)
            info = self.client.publish(topic, row.payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.error("paho refused to queue a message", extra={"fields": {"rc": info.rc}})
                self._retry.append(row.id)
                break
            # NO_CONN: paho keeps it and sends it after reconnecting.
            self._inflight[info.mid] = row.id
            self._high = max(self._high, row.id)

    def status(self, state: str, sources: dict[str, Any] | None = None) -> AgentStatus:
        counters = self.outbox.counters()
        return AgentStatus(
            agent_id=self.cfg.agent_id,
            state="online" if state == "online" else "offline",
            t=int(time.time() * 1000),
            outbox_depth=self.outbox.depth,
            outbox_bytes=self.outbox.bytes,
            dropped=counters.get("dropped_readings", 0),
            published=counters.get("published_readings", 0),
            unconfirmed=self.outbox.unconfirmed() if self.confirming else 0,
            sources=sources or {},
        )

    def publish_status(self, status: AgentStatus) -> mqtt.MQTTMessageInfo | None:
        if not self.connected.is_set():
            return None
        return self.client.publish(self.status_topic, encode_status(status), qos=1, retain=True)
