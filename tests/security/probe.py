"""A small synchronous MQTT probe over ``contract.mqtt.make_client`` for security tests.

Every call waits for the broker's answer (CONNACK, PUBACK, SUBACK) so a test can assert
what the broker decided, not what the client hoped.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from contract.mqtt import MqttOptions, make_client
from contract.settings import Settings


@dataclass
class Probe:
    client: mqtt.Client
    connack: int | None = None  # reason code value, None = no CONNACK (connection failed)
    connected: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: dict[int, list[int]] = field(default_factory=dict)
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    acked: threading.Condition = field(default_factory=threading.Condition)

    @property
    def ok(self) -> bool:
        return self.connack == 0

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> int:
        """Publish QoS 1 and return the PUBACK reason code (0 = accepted, 0x87 = denied)."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            if not self.acked.wait_for(lambda: info.mid in self.pubacks, timeout):
                raise TimeoutError(f"no PUBACK for {topic} within {timeout}s")
            return self.pubacks[info.mid]

    def subscribe(self, topic: str, timeout: float = 5.0) -> int:
        """Subscribe QoS 1 and return the SUBACK reason code (1 = granted QoS 1)."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        if mid is None:
            raise ConnectionError(f"cannot subscribe to {topic}: not connected")
        with self.acked:
            if not self.acked.wait_for(lambda: mid in self.subacks, timeout):
                raise TimeoutError(f"no SUBACK for {topic} within {timeout}s")
            return self.subacks[mid][0]

    def receive(self, timeout: float) -> list[tuple[str, bytes]]:
        out = []
        with contextlib.suppress(queue.Empty):
            out.append(self.messages.get(timeout=timeout))
            while True:
                out.append(self.messages.get(timeout=0.2))
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def connect(settings: Settings, client_id: str | None = None, timeout: float = 5.0) -> Probe:
    """Connect with MQTT 5 and wait for the CONNACK (or for the connection to fail)."""
    opts = MqttOptions(client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}")
    client, url = make_client(settings, opts)
    probe = Probe(client)

    def on_connect(c, u, flags, rc, props) -> None:
        probe.connack = rc.value
        probe.connected.set()
        probe.done.set()

    def on_disconnect(c, u, flags, rc, props) -> None:
        probe.disconnected.set()
        probe.done.set()

    def on_publish(c, u, mid, rc, props) -> None:
        with probe.acked:
            probe.pubacks[mid] = rc.value
            probe.acked.notify_all()

    def on_subscribe(c, u, mid, rcs, props) -> None:
        with probe.acked:
            probe.subacks[mid] = [r.value for r in rcs]
            probe.acked.notify_all()

    def on_message(c, u, msg: mqtt.MQTTMessage) -> None:
        probe.messages.put((msg.topic, bytes(msg.payload)))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(url.host, url.port, keepalive=30)
    except OSError:  # TLS handshake refused (ssl.SSLError is an OSError) or reset
        return probe
    client.loop_start()
    probe.done.wait(timeout)
    if not probe.ok:
        # Stop paho from reconnecting forever with a refused credential.
        probe.close()
    return probe
