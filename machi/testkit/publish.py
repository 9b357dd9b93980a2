"""At-least-once QoS 1 publishing: the one publisher of the tests, the simulator, the
demo and the benchmarks."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import Message, encode_message
from contract.settings import Settings
from contract.topics import Topics

__all__ = ["Publisher"]

#: (device_id, seq) for contract messages; ("", n) for raw publishes.
Key = tuple[str, int]


class Publisher:
    """QoS 1 publisher that keeps every message until its PUBACK arrives.

    paho re-sends its own in-flight messages after a reconnect; on top of that, every
    message still unacknowledged when a new connection comes up is published again,
    and a PUBACK with a failure reason code counts as no PUBACK. Re-sends are the same
    bytes (same seq and times), so ingest stores them idempotently. ``window`` bounds
    what waits for a PUBACK, so memory stays flat however fast the caller publishes.
    """

    def __init__(
        self, settings: Settings, client_id: str, max_inflight: int = 1000, protocol: int = 5
    ) -> None:
        self.topics = Topics(settings.topic_prefix)
        self.opts = MqttOptions(client_id=client_id, protocol=protocol)
        self.client, url = make_client(settings, self.opts)
        self.client.max_inflight_messages_set(max_inflight)
        self._cv = threading.Condition()
        self._unacked: dict[Key, tuple[str, bytes]] = {}
        self._mids: dict[int, Key] = {}
        self._early: dict[int, bool] = {}
        self._raw = itertools.count()
        self.acked_at: dict[Key, float] = {}  # monotonic time of each message's PUBACK
        self.published = 0
        self.acked = 0
        self.resent = 0
        self._connects = 0
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        connect(self.client, url, self.opts)
        self.client.loop_start()
        with self._cv:
            if not self._cv.wait_for(lambda: self._connects > 0, 15):
                raise ConnectionError(f"could not connect to the broker at {url.redacted()}")

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
            self.acked += 1

    def _enqueue(self, key: Key, topic: str, payload: bytes, window: int) -> None:
        with self._cv:
            self._cv.wait_for(lambda: len(self._unacked) < window)
            self._unacked[key] = (topic, payload)
            self.published += 1
        self._send(key, topic, payload)

    def publish(self, msg: Message, window: int = 2000) -> None:
        """Publish one contract message (kept until the broker acknowledges it)."""
        topic = self.topics.telemetry(msg.kind, msg.device_id)
        self._enqueue((msg.device_id, msg.seq), topic, encode_message(msg), window)

    def publish_raw(self, topic: str, payload: bytes, window: int = 2000) -> None:
        """Publish any bytes on any topic (for bad input and non-telemetry topics)."""
        self._enqueue(("", next(self._raw)), topic, payload, window)

    @property
    def unacked(self) -> int:
        with self._cv:
            return len(self._unacked)

    def flush(self, timeout: float = 60.0) -> bool:
        """True once the broker has acknowledged everything published so far."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._unacked, timeout)

    def close(self, timeout: float = 60.0) -> None:
        self.flush(timeout)
        self.client.disconnect()
        self.client.loop_stop()
