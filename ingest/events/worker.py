"""The events worker: telemetry in, care alerts and bus arrivals out, at least once.

Flow per message (on a processing thread, so paho's network loop never blocks):
decode with ``contract.schema.decode_message`` -> derive events -> publish each alert
(QoS 1, waiting for the broker's PUBACK) -> write the derived points to InfluxDB with
ingest's ``Writer`` (same retry policy: retried until the database answers; a body it
refuses is split until each bad line is isolated) -> acknowledge the telemetry message.
A crash anywhere before the ack means redelivery; redelivered readings are skipped by
the trackers and the points are idempotent (same tags + timestamp), so nothing doubles.

On start, episode and visit state is rebuilt from InfluxDB (the last ``care_alert`` per
device and type; the last day's ``bus_arrival`` points for visits and headways).
"""

# ruff: noqa: S608 -- queries here are constants plus a number we format.
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contract.events import BUS_ARRIVAL, CARE_ALERT, DEVICE_ALERT
from contract.influx import InfluxError
from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import BusMessage, Reason, Rejected, WearableMessage, decode_message
from contract.settings import Settings
from contract.topics import Topics
from ingest.binding import Binding
from ingest.events.arrivals import ArrivalMatcher
from ingest.events.care import AlertEvent, CareRules, CareTracker
from ingest.events.devices import DeviceRules, DeviceTracker
from ingest.events.gtfs import Schedule
from ingest.writer import V1Backend, Writer

log = logging.getLogger("machi.events")


@dataclass(frozen=True)
class EventsOptions:
    client_id: str = "machi-events"
    protocol: int = 5
    radius_m: float = 50.0
    stats_interval_s: float = 60.0
    receive_maximum: int = 100


class EventsWorker:
    def __init__(
        self,
        settings: Settings,
        rules: CareRules | None = None,
        schedule: Schedule | None = None,
        opts: EventsOptions | None = None,
        devices: DeviceRules | None = None,
        binding: Binding | None = None,
    ) -> None:
        self.settings = settings
        # Device problems (off unless given): see ingest/events/devices.py.
        self.devices = DeviceTracker(devices) if devices is not None else None
        self._connected_at: float | None = None
        # The device binding ingest applies (ingest/binding.py): a spoofed site must not
        # raise alerts under another district either. None = open mode.
        self.binding = binding
        self.opts = opts or EventsOptions()
        self.topics = Topics(settings.topic_prefix)
        self.care = CareTracker(rules)
        self.arrivals = ArrivalMatcher(schedule, self.opts.radius_m) if schedule else None
        self.stats: Counter[str] = Counter()
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stop = threading.Event()
        # v1 API: restore() reads state back with InfluxQL. Derived points are few and
        # small, so bodies go uncompressed.
        backend = V1Backend(settings, use_gzip=False)
        self.influx = backend.client
        self.writer = Writer(backend, max_retry_s=10.0, stop=self._stop)
        self._thread: threading.Thread | None = None
        self._mqtt_opts = MqttOptions(
            client_id=self.opts.client_id,
            persistent=True,
            protocol=self.opts.protocol,
            manual_ack=True,
            receive_maximum=self.opts.receive_maximum,
        )
        self.client, self._url = make_client(settings, self._mqtt_opts)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._wait_for_influx()
        if self._stop.is_set():  # stopped while waiting for InfluxDB
            return
        self.restore()
        self._thread = threading.Thread(target=self._run, name="events-process", daemon=True)
        self._thread.start()
        connect(self.client, self._url, self._mqtt_opts)
        self.client.loop_start()

    def request_stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler); :meth:`stop` finishes it."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()
        self.influx.close()

    def _wait_for_influx(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.influx.create_database()
                return
            except (httpx.HTTPError, InfluxError) as exc:
                log.warning("InfluxDB not ready, retrying", extra={"fields": {"error": str(exc)}})
                self._stop.wait(delay)
                delay = min(delay * 2, 10)

    def restore(self) -> None:
        """Rebuild episode and stop-visit state from what is already in InfluxDB."""
        rows = self.influx.rows(
            f'SELECT LAST(state) AS state, episode_ms FROM {CARE_ALERT} GROUP BY device_id, "type"'
        )
        for r in rows:
            self.care.restore(
                r["device_id"], r["type"], r["state"], int(r["episode_ms"] or 0), int(r["time"])
            )
        if self.devices is not None:
            self._restore_devices()
        if self.arrivals is not None:
            # Every arrival of the last day (a few thousand points for a city): the last
            # one per bus and stop continues visits, the recent ones per route and stop
            # continue headways (and let a late arrival correct its successor's).
            for r in self.influx.rows(
                f"SELECT delay_s FROM {BUS_ARRIVAL} WHERE time > now() - 1d "
                "GROUP BY device_id, route_id, site, stop_id"
            ):
                self.arrivals.restore(
                    r["device_id"], r["route_id"], r["site"], r["stop_id"], int(r["time"])
                )
        log.info(
            "state restored",
            extra={
                "fields": {"open_episodes": self.care.open_episodes(), "alert_series": len(rows)}
            },
        )

    def _restore_devices(self) -> None:
        assert self.devices is not None
        # Wearables seen in the last day ("has reported before"), then open device episodes.
        for r in self.influx.rows(
            "SELECT LAST(seq) FROM wearable WHERE time > now() - 1d GROUP BY device_id, site"
        ):
            self.devices.restore_seen(r["device_id"], r.get("site") or "", int(r["time"]))
        for r in self.influx.rows(
            f"SELECT LAST(state) AS state, episode_ms FROM {DEVICE_ALERT} "
            'GROUP BY device_id, site, "type"'
        ):
            self.devices.restore(
                r["device_id"],
                r.get("site") or "",
                r["type"],
                r["state"],
                int(r["episode_ms"] or 0),
            )

    # -- MQTT callbacks (network thread) ----------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _u: Any,
        _f: mqtt.ConnectFlags,
        rc: ReasonCode,
        _p: Properties | None = None,
    ) -> None:
        if rc.is_failure:
            log.error("MQTT connect refused", extra={"fields": {"reason": str(rc)}})
            return
        subs = [(self.topics.telemetry_filter("wearable"), 1)]
        if self.arrivals is not None:
            subs.append((self.topics.telemetry_filter("bus"), 1))
        # Subscribing on every connect: a broker that lost the session still gets them.
        client.subscribe(subs)
        self.connected.set()
        if self._connected_at is None:
            self._connected_at = time.monotonic()
        log.info("connected", extra={"fields": {"subscriptions": [s for s, _ in subs]}})

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(msg)

    # -- processing thread ------------------------------------------------------------

    def _run(self) -> None:
        next_stats = time.monotonic() + self.opts.stats_interval_s
        while not self._stop.is_set():
            try:
                msg = self._queue.get(timeout=0.2)
            except queue.Empty:
                msg = None
            if msg is not None:
                if self.handle(msg.topic, bytes(msg.payload)):
                    if msg.qos > 0:
                        self.client.ack(msg.mid, msg.qos)
                else:
                    return  # stopping mid-message: leave it unacked for redelivery
            if msg is None and not self._check_silent():
                return
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.opts.stats_interval_s
                log.info("events stats", extra={"fields": dict(self.stats)})

    def _check_silent(self) -> bool:
        """Raise silent-wearable alerts once the backlog is drained and the worker has
        listened for the threshold (so a restart does not mistake its own gap for
        silence); False when stopping."""
        if self.devices is None or self._connected_at is None or not self._queue.empty():
            return True
        if time.monotonic() - self._connected_at < self.devices.rules.silent_after_s:
            return True
        alerts = self.devices.silent(int(time.time() * 1000))
        for a in alerts:
            if not self._publish(a):
                return False
            self.stats[f"device_alerts_{a.state}"] += 1
        return not alerts or self._write([a.line() for a in alerts])

    def handle(self, topic: str, payload: bytes) -> bool:
        """Process one message; True when it may be acknowledged."""
        self.stats["messages"] += 1
        parsed = self.topics.parse_telemetry(topic)
        try:
            if parsed is None:
                raise Rejected(Reason.BAD_TOPIC, f"{topic!r} is not a telemetry topic")
            kind, device_id = parsed
            msg = decode_message(kind, device_id, payload, int(time.time() * 1000))
            if self.binding is not None:
                msg = self.binding.bind(msg)
        except Rejected as exc:
            # Ingest dead-letters the same message for inspection; here it is counted and
            # logged, then acknowledged so one bad payload never stalls the stream.
            self.stats[f"rejected_{exc.reason.value}"] += 1
            log.warning(
                "rejected telemetry",
                extra={
                    "fields": {
                        "topic": topic,
                        "reason": exc.reason.value,
                        "detail": exc.detail,
                        "payload_head": payload[:200].decode("utf-8", "replace"),
                    }
                },
            )
            return True
        alerts: list[AlertEvent] = []
        lines: list[str] = []
        if isinstance(msg, WearableMessage):
            alerts = self.care.process(msg.device_id, msg.site, msg.readings)
            if self.devices is not None:
                alerts += self.devices.process(msg.device_id, msg.site, msg.readings)
            lines = [a.line() for a in alerts]
        elif isinstance(msg, BusMessage) and self.arrivals is not None:
            arrivals = self.arrivals.process(msg.device_id, msg.site, msg.readings)
            lines = [x for a in arrivals for x in a.lines()]
            self.stats["arrivals"] += len(arrivals)
        self.stats["readings"] += len(msg.readings)
        for a in alerts:
            if not self._publish(a):
                return False
            self.stats[f"alerts_{a.state}"] += 1
        return not lines or self._write(lines)

    def _publish(self, a: AlertEvent) -> bool:
        topic = self.topics.alert("care", a.device_id)
        payload = json.dumps(a.payload()).encode()
        while not self._stop.is_set():
            info = self.client.publish(topic, payload, qos=1, retain=False)
            deadline = time.monotonic() + 30
            while not self._stop.is_set() and time.monotonic() < deadline:
                if info.is_published():
                    return True
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    break
                time.sleep(0.01)
            if info.is_published():
                return True
            log.warning(
                "alert publish not acknowledged yet, retrying", extra={"fields": {"topic": topic}}
            )
        return False

    def _write(self, lines: list[str]) -> bool:
        """Store derived points; False only when stopping before they were stored."""
        try:
            rejected = self.writer.write(lines)
        except InterruptedError:
            return False
        if rejected:
            # Derived points are built from validated readings; a refused line is a bug
            # or a schema conflict, and retrying cannot fix it. The rest is stored.
            self.stats["write_rejected"] += len(rejected)
            log.error(
                "InfluxDB refused derived points",
                extra={
                    "fields": {
                        "refused": len(rejected),
                        "of": len(lines),
                        "error": rejected[0].error[:500],
                        "lines": [r.line for r in rejected[:5]],
                    }
                },
            )
        return True
