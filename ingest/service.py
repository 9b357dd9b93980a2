"""The ingest worker: MQTT messages in, batches of line protocol out, acks after storage.

Threads: paho's network loop decodes messages and appends their lines to the open
batch; a timer seals batches that are old enough and adds the worker's own stats;
``writers`` threads store sealed batches concurrently, then acknowledge their messages
strictly in the order the batches were sealed (so PUBACKs leave in the order the
PUBLISHes arrived, as MQTT requires), then publish storage confirmations.
"""

from __future__ import annotations

import bisect
import errno
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, cast

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract import events
from contract.lineprotocol import line, message_lines
from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import Reason, Rejected, decode_message
from contract.settings import ConfigError
from contract.status import decode_status
from contract.topics import Topics
from ingest.binding import load_binding
from ingest.config import IngestConfig
from ingest.confirm import Confirmer, Key
from ingest.deadletter import DeadLetterFile
from ingest.metrics import IngestMetrics
from ingest.writer import Writer, make_backend

log = logging.getLogger("machi.ingest")
_MISSING = object()


class _SeqOnly(msgspec.Struct):
    """Just enough of a rejected telemetry payload to confirm it as dead-lettered."""

    device_id: str
    seq: Annotated[int, msgspec.Meta(ge=0)]


_seq_only = msgspec.json.Decoder(_SeqOnly)


@dataclass(slots=True)
class _Item:
    """One MQTT message's share of a batch: lines [start, start+count)."""

    mid: int
    qos: int
    generation: int
    topic: str
    payload: bytes
    start: int
    count: int
    key: Key | None = None  # set for telemetry: confirmed after the batch is stored
    dead: bool = False  # rejected and kept in the dead-letter file


@dataclass
class _Batch:
    lines: list[str] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)
    readings: int = 0
    max_t: int = 0
    opened: float = field(default_factory=time.monotonic)
    seq: int = 0  # seal order: acknowledgements go out in this order


class IngestService:
    def __init__(self, cfg: IngestConfig, metrics: IngestMetrics | None = None) -> None:
        self.cfg = cfg
        self.topics = Topics(cfg.settings.topic_prefix)
        self.metrics = metrics or IngestMetrics()
        # Device binding first: a missing registry stops the worker before it connects.
        self.binding = load_binding(cfg.registry, cfg.open_mode, self.metrics.site_rewrites.inc)
        self.deadletters = DeadLetterFile(cfg.dead_letter_file)
        self._stop = threading.Event()
        # Set when stopping: a write that fails from then on is given up rather than
        # retried -- its messages stay unacknowledged and the broker redelivers them.
        self._draining = threading.Event()
        self._stopped = False
        self.writer = Writer(
            make_backend(cfg.settings, use_gzip=cfg.gzip),
            max_retry_s=cfg.max_retry_s,
            stop=self._draining,
            on_retry=lambda _a: self.metrics.retries.inc(),
        )
        self._lock = threading.Condition()
        self._batch = _Batch()
        self._sealed: queue.Queue[_Batch | None] = queue.Queue(maxsize=cfg.max_pending_batches)
        # One per broker connection; 0 while disconnected. A message is acknowledged
        # only on the connection that delivered it: after a reconnect the broker
        # redelivers it and may reuse its packet id.
        self._generation = 0
        self._generations = 0
        self._connected = threading.Event()  # subscribed: ready for traffic
        # Sealing and hand-off happen together, so batches reach the writers in seal order.
        self._handoff = threading.Lock()
        self._sealed_count = 0
        self._ack_turn = threading.Condition()
        self._next_ack = 0  # seq of the batch whose acknowledgements go out next
        self._threads: list[threading.Thread] = []
        self._status_prefix = f"{self.topics.prefix}/v1/status/"
        # Cumulative counts written to InfluxDB as ingest_stats / ingest_rejects.
        self.counts: Counter[str] = Counter()
        self.reject_counts: Counter[str] = Counter()
        self._last_stored_t = 0
        self._pending = 0
        self._topic_cache: dict[str, object] = {}
        self.opts = MqttOptions(
            client_id=cfg.client_id,
            persistent=True,
            protocol=cfg.protocol,
            manual_ack=True,
            keepalive=60,
            receive_maximum=cfg.receive_maximum,
        )
        self.client, self.url = make_client(cfg.settings, self.opts)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        # Unlimited in paho, bounded by the confirmer instead: with a limit, paho scans
        # every unacknowledged publish on each PUBACK, which cost ~8 % of ingest's CPU
        # with one confirmation per device per batch.
        self.client.max_inflight_messages_set(0)
        self.confirmer = Confirmer(self.client, self.topics, enabled=cfg.confirm)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self.cfg.metrics_port is not None:
            self._serve_metrics(self.cfg.metrics_port, self.cfg.metrics_host)
        self.writer.backend.ensure_database()
        # A zero baseline, so counter steps in InfluxDB also count what happens before
        # the first periodic stats point.
        self._batch.lines.extend(self._stats_lines())
        for i in range(self.cfg.writers):
            self._spawn(self._write_loop, f"ingest-writer-{i}")
        self._spawn(self._timer_loop, "ingest-timer")
        connect(self.client, self.url, self.opts)
        self.client.loop_start()
        log.info(
            "ingest started",
            extra={
                "fields": {
                    "mqtt": self.url.redacted(),
                    "influx": self.cfg.settings.influx_url,
                    "db": self.cfg.settings.influx_db,
                    "prefix": self.topics.prefix,
                    "client_id": self.cfg.client_id,
                    "shared_group": self.cfg.shared_group,
                }
            },
        )

    def _serve_metrics(self, port: int, host: str) -> None:
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr=host, registry=self.metrics.registry)
        except OSError as exc:
            what = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc}"
            raise ConfigError(
                f"--metrics-port/MACHI_METRICS_PORT {port}: binding {host}:{port} {what}; "
                "choose another port (0 = any free port, -1 = no metrics endpoint)"
            ) from None

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Store what was received, acknowledge it, then disconnect. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._draining.set()
        deadline = time.monotonic() + timeout
        self._seal(lambda _b: True, deadline)
        writers = [t for t in self._threads if t.name.startswith("ingest-writer")]
        for _ in writers:
            self._put(None, deadline)
        for t in writers:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for t in self._threads:
            t.join(1.0)
        self.client.disconnect()
        self.client.loop_stop()
        self.deadletters.close()
        log.info("ingest stopped", extra={"fields": dict(self.counts)})

    def _writers_alive(self) -> bool:
        return any(t.is_alive() for t in self._threads if t.name.startswith("ingest-writer"))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # -- MQTT callbacks (paho network thread) --------------------------------------------

    def _filters(self) -> list[str]:
        filters = [self.topics.telemetry_filter(), f"{self.topics.prefix}/v1/status/+"]
        if self.cfg.shared_group:
            filters = [f"$share/{self.cfg.shared_group}/{f}" for f in filters]
        return filters

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            # Acks for messages of an earlier connection must not be sent on this one:
            # the broker redelivers those and may reuse their packet ids. Messages of a
            # resumed session arrive right after the CONNACK, before our SUBACK: they
            # belong to this connection and are acknowledged on it.
            self._generations += 1
            self._generation = self._generations
        # The broker's Receive Maximum bounds our own QoS 1 publishes in flight
        # (65535 when it names none); the confirmer keeps to it.
        self.confirmer.connected(getattr(properties, "ReceiveMaximum", 65535))
        if self.cfg.protocol == 5:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self._filters()])
        else:
            client.subscribe([(f, 1) for f in self._filters()])
        log.info(
            "connected to broker",
            extra={
                "fields": {"session_present": flags.session_present, "filters": self._filters()}
            },
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        # Ready only once the broker has the subscription: a message published before the
        # SUBACK of a brand-new session would not be queued for us.
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker refused the subscription: %s (check the ACL)", failed)
            return
        self._connected.set()
        self.metrics.connected.set(1)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        with self._lock:
            self._generation = 0
        self.metrics.connected.set(0)
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        generation = self._generation
        topic = msg.topic
        payload = bytes(msg.payload)
        lines: list[str] = []
        max_t = 0
        qos = msg.qos
        key: Key | None = None
        dead = False
        try:
            lines, max_t, key = self._decode(topic, payload)
        except Rejected as exc:
            qos, dead = self._reject_or_hold(exc.reason.value, exc.detail, topic, payload, qos)
        except Exception as exc:
            # An exception escaping this callback would kill paho's network thread and
            # stall the stream; keep the message for inspection instead.
            log.exception("bug while decoding a message; dead-lettering it")
            qos, dead = self._reject_or_hold(Reason.INTERNAL.value, repr(exc), topic, payload, qos)
        if dead and self.confirmer.enabled:
            key = self._rejected_key(topic, payload)
        item = _Item(msg.mid, qos, generation, topic, payload, 0, len(lines), key, dead)
        self._add(item, lines, max_t)

    def _decode(self, topic: str, payload: bytes) -> tuple[list[str], int, Key | None]:
        """Lines for one message, its newest reading time and (device_id, seq) if it is
        telemetry; raises Rejected."""
        parsed = self._topic_cache.get(topic, _MISSING)
        if parsed is _MISSING:
            parsed = self.topics.parse_telemetry(topic)
            if len(self._topic_cache) > 200_000:  # bound memory on topic floods
                self._topic_cache.clear()
            self._topic_cache[topic] = parsed
        now_ms = time.time_ns() // 1_000_000
        if parsed is not None:
            kind, device_id = cast(tuple[str, str], parsed)
            message = decode_message(kind, device_id, payload, now_ms, self.cfg.limits)
            if self.binding is not None:
                message = self.binding.bind(message)  # raises Rejected; may set the site
            # Readings are in time order in practice; the last one stands for the newest.
            return message_lines(message), message.readings[-1].t, (device_id, message.seq)
        if topic.startswith(self._status_prefix):
            return [self._status_line(topic, payload, now_ms)], 0, None
        raise Rejected(Reason.BAD_TOPIC, f"topic {topic!r} is not a contract v1 topic")

    def _reject_or_hold(
        self, reason: str, detail: str, topic: str, payload: bytes, qos: int
    ) -> tuple[int, bool]:
        """Dead-letter a message; return the QoS to acknowledge it with (0 = never ack)
        and whether it is kept in the dead-letter file.

        If the dead-letter file cannot be written (disk full, permissions), the message
        is held unacknowledged so the broker keeps it, rather than acked unrecorded.
        """
        try:
            self._reject(reason, detail, topic, payload)
        except OSError:
            log.exception("cannot write the dead-letter file; holding the message unacknowledged")
            self.metrics.messages.labels("held").inc()
            return 0, False
        return qos, True

    def _rejected_key(self, topic: str, payload: bytes) -> Key | None:
        """(device_id, seq) of a rejected telemetry message, if the topic and payload
        agree on the device; otherwise it cannot be confirmed to anyone."""
        parsed = self.topics.parse_telemetry(topic)
        if parsed is None:
            return None
        try:
            head = _seq_only.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return None
        return (head.device_id, head.seq) if head.device_id == parsed[1] else None

    def _status_line(self, topic: str, payload: bytes, now_ms: int) -> str:
        agent_id = topic[len(self._status_prefix) :]
        try:
            st = decode_status(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise Rejected(Reason.SCHEMA, f"agent status: {exc}") from None
        if st.agent_id != agent_id:
            raise Rejected(Reason.TOPIC_MISMATCH, f"status agent_id {st.agent_id!r} != topic")
        return line(
            events.AGENT_STATUS,
            {"agent_id": st.agent_id},
            {
                "online": st.state == "online",
                "outbox_depth": st.outbox_depth,
                "outbox_bytes": st.outbox_bytes,
                "dropped": st.dropped,
                "published": st.published,
                "sources_unhealthy": sum(1 for s in st.sources.values() if not s.healthy),
                "unconfirmed": st.unconfirmed,
            },
            # A retained status can be old; store it at its own time, bounded to now.
            min(st.t, now_ms) if st.t > 0 else now_ms,
        )

    def _reject(
        self, reason: str, detail: str, topic: str, payload: bytes, **extra: object
    ) -> None:
        self.deadletters.append(reason, detail, topic, payload, self.cfg.worker, extra or None)
        if self.cfg.dead_letter_topic:
            self.client.publish(self.topics.deadletter(reason), payload, qos=1)
        self.metrics.rejects.labels(reason).inc()
        self.metrics.messages.labels("rejected").inc()
        self.reject_counts[reason] += 1
        self.counts["rejected"] += 1
        log.warning(
            "rejected message",
            extra={"fields": {"reason": reason, "detail": detail[:300], "topic": topic[:200]}},
        )

    # -- batching -------------------------------------------------------------------------

    def _add(self, item: _Item, lines: list[str], max_t: int) -> None:
        with self._lock:
            b = self._batch
            item.start = len(b.lines)
            b.lines.extend(lines)
            b.items.append(item)
            b.readings += len(lines)
            if max_t > b.max_t:
                b.max_t = max_t
            full = len(b.lines) >= self.cfg.batch_lines
            self._pending += len(lines)
        if full:
            # Blocks the network loop when writers fall behind: backpressure to the broker.
            self._seal(lambda b: len(b.lines) >= self.cfg.batch_lines)

    def _seal(self, due: Callable[[_Batch], bool], deadline: float | None = None) -> None:
        """Close the open batch if it is non-empty and ``due``, and hand it to the writers.

        Never holds ``_lock`` (which the writers need to finish a batch) while waiting
        for room; ``_handoff`` keeps seal order and queue order the same.
        """
        if deadline is None:
            self._handoff.acquire()
        elif not self._handoff.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return  # stopping, and the hand-off is stuck: the batch stays unacknowledged
        try:
            with self._lock:
                b = self._batch
                if (not b.items and not b.lines) or not due(b):
                    return
                self._batch = _Batch()
                b.seq = self._sealed_count
                self._sealed_count += 1
            self._put(b, deadline)
        finally:
            self._handoff.release()

    def _put(self, b: _Batch | None, deadline: float | None = None) -> None:
        """Hand a batch to the writers, waiting while they are behind (until stopped or
        ``deadline``; a batch not handed over stays unacknowledged)."""
        while True:
            try:
                self._sealed.put(b, timeout=0.2)
                return
            except queue.Full:
                if self._stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                    return
                if self._draining.is_set() and (deadline is None or not self._writers_alive()):
                    # Stopping: new batches need not be stored, and with every writer
                    # gone (InfluxDB down) nothing will make room.
                    return

    def _timer_loop(self) -> None:
        next_stats = time.monotonic() + self.cfg.stats_interval_s
        tick = min(0.1, self.cfg.batch_s / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + self.cfg.stats_interval_s
                with self._lock:
                    self._batch.lines.extend(self._stats_lines())
            self._seal(partial(self._older_than, now - self.cfg.batch_s))

    @staticmethod
    def _older_than(opened_before: float, b: _Batch) -> bool:
        return b.opened <= opened_before

    def _stats_lines(self) -> list[str]:
        now_ms = time.time_ns() // 1_000_000
        lag = (now_ms - self._last_stored_t) / 1000 if self._last_stored_t else None
        worker = {"worker": self.cfg.worker}
        out = [
            line(
                events.INGEST_STATS,
                worker,
                {
                    "messages": self.counts["messages"],
                    "readings": self.counts["readings"],
                    "rejected": self.counts["rejected"],
                    "lag_s": lag,
                    "pending": self._pending,
                },
                now_ms,
            )
        ]
        out += [
            line(events.INGEST_REJECTS, {**worker, "reason": r}, {"count": n}, now_ms)
            for r, n in sorted(self.reject_counts.items())
        ]
        return out

    # -- storing and acknowledging ---------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            b = self._sealed.get()
            if b is None:
                return
            try:
                self._commit(b)
            except InterruptedError:
                log.warning("stopped before a batch was stored; its messages will be redelivered")
                with self._ack_turn:
                    # Later batches must not be acknowledged ahead of this one.
                    self._next_ack = -1
                    self._ack_turn.notify_all()
                return
            except Exception:
                # Unacknowledged messages are redelivered after a restart; crash loudly so a
                # supervisor restarts us instead of running on half-broken.
                log.exception("unexpected error storing a batch; exiting")
                self._stop.set()
                raise

    def _commit(self, b: _Batch) -> None:
        t0 = time.perf_counter()
        rejections = self.writer.write(b.lines) if b.lines else []
        if rejections:
            starts = [it.start for it in b.items]
            for rej in rejections:
                idx = bisect.bisect_right(starts, rej.index) - 1
                # Stats lines are appended without an item; they sit past the last item.
                if idx < 0 or rej.index >= b.items[idx].start + b.items[idx].count:
                    log.error("InfluxDB rejected an ingest stats line: %s", rej.error)
                    continue
                it = b.items[idx]
                it.dead = True  # partly stored: the whole payload is in the dead-letter file
                self._reject(
                    Reason.DB_REJECTED.value,
                    f"InfluxDB refused reading {rej.index - it.start}: {rej.error}",
                    it.topic,
                    it.payload,
                    line=rej.line,
                )
        self.deadletters.sync()
        stored = b.readings - len(rejections)
        self._ack_in_order(b)
        if self.confirmer.enabled:
            self.counts["confirmations"] += self.confirmer.confirm(
                (it.key, it.dead) for it in b.items if it.key is not None
            )
        n_msgs = sum(1 for it in b.items if it.count)
        self.counts["messages"] += n_msgs
        self.counts["readings"] += stored
        self.metrics.messages.labels("stored").inc(n_msgs)
        self.metrics.readings.inc(stored)
        with self._lock:
            self._pending -= b.readings
            self.metrics.pending.set(self._pending)
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        self.metrics.batch_lines.observe(len(b.lines))
        if b.max_t > self._last_stored_t:
            self._last_stored_t = b.max_t
        if self._last_stored_t:
            self.metrics.lag.set(time.time() - self._last_stored_t / 1000)

    def _ack_in_order(self, b: _Batch) -> None:
        """Acknowledge a stored batch's messages once every earlier batch's are."""
        with self._ack_turn:
            while self._next_ack != b.seq:
                if self._next_ack < 0 or self._stop.is_set():
                    return  # an earlier batch was given up: leave these for redelivery
                self._ack_turn.wait(0.5)
            generation = self._generation
            for it in b.items:
                if it.qos and generation and it.generation == generation:
                    self.client.ack(it.mid, it.qos)
            self._next_ack = b.seq + 1
            self._ack_turn.notify_all()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.confirmer.on_publish(mid, reason_code)

    def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then stop gracefully."""
        import signal

        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        while not done.wait(0.5):
            if self._stop.is_set():
                raise SystemExit("a writer failed; see the log")
        self.stop()
