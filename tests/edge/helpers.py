"""Helpers shared by the edge tests: config documents and a broker-side collector."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from contract.mqtt import MqttOptions, connect, make_client
from contract.settings import Settings
from contract.topics import Topics
from machi.testkit import wait_for

__all__ = ["Collector", "config_doc", "wait_for"]


def config_doc(
    tmp: Path, settings: Settings, sources: list[dict[str, Any]], **agent: Any
) -> dict[str, Any]:
    outbox = agent.pop("outbox", {})
    return {
        "agent": {"id": agent.pop("id", "edge-test"), "site": "testsite", **agent},
        "mqtt": {"url": settings.mqtt_url, "topic_prefix": settings.topic_prefix},
        "outbox": {"path": str(tmp / "outbox.db"), "max_bytes": 10_000_000, **outbox},
        "sources": sources,
    }


class Collector:
    """Subscribes (QoS 1) to a prefix's telemetry and status; keeps every message."""

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics(settings.topic_prefix)
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        opts = MqttOptions(client_id=f"collector-{uuid.uuid4().hex[:8]}")
        self.client, url = make_client(settings, opts)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        connect(self.client, url, opts)
        self.client.loop_start()
        assert self.ready.wait(10), "collector could not connect"

    def _on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        client.subscribe(self.topics.telemetry_filter(), qos=1)
        client.subscribe(f"{self.topics.prefix}/v1/status/+", qos=1)
        time.sleep(0.2)
        self.ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def telemetry(self) -> list[dict[str, Any]]:
        with self.lock:
            return [msgspec.json.decode(p) for t, p in self.messages if "/v1/telemetry/" in t]

    def statuses(self) -> list[dict[str, Any]]:
        with self.lock:
            return [msgspec.json.decode(p) for t, p in self.messages if "/v1/status/" in t]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
