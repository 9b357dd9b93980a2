"""Fault-suite plumbing: an at-least-once test publisher, a fleet stream, ingest workers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import Message, encode_message
from contract.settings import Settings
from contract.topics import Topics
from machi.servers import IngestProcess, Mosquitto
from machi.simulate import Fleet
from tests.faults.accounting import Key, Ledger


class AckPublisher:
    """QoS 1 publisher that keeps every message until its PUBACK arrives.

    paho re-sends its own in-flight messages after a reconnect; on top of that, every
    message still unacknowledged when a new connection comes up is published again,
    and a PUBACK with a failure reason code counts as no PUBACK. Re-sends are the same
    bytes (same seq and times), so ingest stores them idempotently.
    """

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.topics = Topics(settings.topic_prefix)
        self.opts = MqttOptions(client_id=client_id, protocol=5)
        self.client, url = make_client(settings, self.opts)
        self._cv = threading.Condition()
        self._unacked: dict[Key, tuple[str, bytes]] = {}
        self._mids: dict[int, Key] = {}
        self._early: dict[int, bool] = {}
        self.acked_at: dict[Key, float] = {}  # monotonic time of each message's PUBACK
        self._connects = 0
        self.resent = 0
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        connect(self.client, url, self.opts)
        self.client.loop_start()
        with self._cv:
            if not self._cv.wait_for(lambda: self._connects > 0, 15):
                raise ConnectionError(f"could not connect to {url.redacted()}")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            return
        with self._cv:
            self._connects += 1
            again = list(self._unacked.items()) if self._connects > 1 else []
            self._cv.notify_all()
        for key, (topic, payload) in again:
            self._send(key, topic, payload)
            self.resent += 1

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        # Called with paho's outgoing-message lock held: never hold self._cv while calling
        # into paho, or the two threads would deadlock.
        with self._cv:
            key = self._mids.pop(mid, None)
            if key is None:  # the PUBACK beat _send() to recording the mid
                self._early[mid] = not rc.is_failure
            elif not rc.is_failure:
                self._acked(key)
            self._cv.notify_all()

    def _send(self, key: Key, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._cv:
            ok = self._early.pop(info.mid, None)
            if ok is None:
                self._mids[info.mid] = key
            elif ok:
                self._acked(key)
                self._cv.notify_all()

    def _acked(self, key: Key) -> None:
        if self._unacked.pop(key, None) is not None:
            self.acked_at[key] = time.monotonic()

    def publish(self, msg: Message, window: int = 1000) -> None:
        key = (msg.device_id, msg.seq)
        topic = self.topics.telemetry(msg.kind, msg.device_id)
        payload = encode_message(msg)
        with self._cv:
            self._cv.wait_for(lambda: len(self._unacked) < window)
            self._unacked[key] = (topic, payload)
        self._send(key, topic, payload)

    @property
    def unacked(self) -> int:
        with self._cv:
            return len(self._unacked)

    def flush(self, timeout: float = 60.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: not self._unacked, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Stream:
    """A fleet publishing ``rounds`` rounds (one message per device each) in a thread.

    Readings lie in the recent past, ``per_message`` per message 100 ms apart; every
    message is recorded in ``ledger`` before it is published.
    """

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        rounds: int,
        pause_s: float,
        per_message: int = 10,
        devices: tuple[int, int, int] = (8, 6, 4),
        name: str = "pub",
    ) -> None:
        self.settings, self.ledger, self.rounds, self.pause_s = settings, ledger, rounds, pause_s
        self.per_message = per_message
        meters, wearables, buses = devices
        self.fleet = Fleet.build(meters, wearables, buses, seed=7, prefix=f"{name}-")
        self.client_id = f"{name}-{settings.topic_prefix}"
        self.publisher: AckPublisher | None = None
        self.error: BaseException | None = None
        self.halt = threading.Event()  # set to end the stream after the current round
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Stream:
        self.publisher = AckPublisher(self.settings, self.client_id)
        self.thread.start()
        return self

    def _run(self) -> None:
        assert self.publisher is not None
        try:
            span = self.per_message * 100
            t0 = time.time_ns() // 1_000_000 - self.rounds * span - 60_000
            for i in range(self.rounds):
                if self.halt.is_set():
                    break
                for msg in self.fleet.messages(t0 + i * span, 0.1, self.per_message):
                    self.ledger.add_message(msg)
                    self.publisher.publish(msg)
                time.sleep(self.pause_s)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout: float = 120.0) -> None:
        """Wait until every message is published and acknowledged by the broker."""
        assert self.publisher is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "publisher still running"
        assert self.error is None, f"publisher failed: {self.error!r}"
        assert self.publisher.flush(timeout), f"{self.publisher.unacked} messages never acked"
        self.publisher.close()

    @property
    def expected(self) -> int:
        return self.rounds * len(self.fleet.devices) * self.per_message


def ingest(tmp: Path, name: str, mqtt_url: str, influx_url: str, s: Settings) -> IngestProcess:
    """A ``machi ingest`` subprocess with a fixed client id (persistent session)."""
    return IngestProcess(
        tmp / name, mqtt_url, influx_url, s.influx_db, s.topic_prefix,
        client_id=f"{name}-{s.topic_prefix}", extra_args=["--batch-seconds", "0.3"],
        open_mode=True,
    )  # fmt: skip


def save_id(mq: Mosquitto) -> tuple[int, int] | None:
    """Identity of mosquitto's persistence file: it changes with every save."""
    try:
        st = os.stat(mq.workdir / "data" / "mosquitto.db")
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class SaveWatcher:
    """Notes (monotonic time) each time mosquitto replaces its persistence file."""

    def __init__(self, mq: Mosquitto) -> None:
        self.mq = mq
        self.saves: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = save_id(self.mq)
        while not self._stop.wait(0.02):
            now = save_id(self.mq)
            if now is not None and now != last:
                self.saves.append(time.monotonic())
                last = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
