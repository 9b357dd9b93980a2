"""OpenMQTTGateway / Theengs Gateway JSON on a LOCAL broker -> wearable readings.

Subscribes to ``<topic>/BTtoMQTT/+`` (``topic`` is the gateway's base topic). The MAC
in the topic is mapped to a device_id via the ``devices`` table; unknown MACs are
rejects, so a raw MAC never reaches the uplink.
"""

from __future__ import annotations

import json
import math
import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt

from contract.mqtt import MqttOptions, connect, make_client
from contract.settings import Settings
from firmware_bridge.base import DecodeError, DeviceError, RejectLog
from firmware_bridge.ble_gateway.devices import device_table
from firmware_bridge.ble_gateway.framing import normalize_mac
from firmware_bridge.config import SourceConfig

MAX_PAYLOAD = 8192
MAX_BATCH = 500

# Gateway JSON key -> (contract field, lo, hi). Theengs/OMG decoders name the same
# quantity differently per device family (e.g. Mi Band's activity heart rate "act_bpm").
JSON_FIELDS: dict[str, tuple[str, float, float]] = {
    "hr": ("heart_rate_bpm", 0, 300),
    "heart_rate": ("heart_rate_bpm", 0, 300),
    "act_bpm": ("heart_rate_bpm", 0, 300),
    "bpm": ("heart_rate_bpm", 0, 300),
    "spo2": ("spo2_pct", 0, 100),
    "tempc": ("skin_temp_c", -50, 100),
    "steps": ("steps", 0, 10**9),
    "batt": ("battery_pct", 0, 100),
}


def decode_gateway_json(payload: bytes) -> dict[str, Any]:
    """Contract wearable fields from one gateway JSON message (no device_id yet)."""
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError(f"payload is {len(payload)} bytes, over {MAX_PAYLOAD}", "too_long")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise DecodeError("payload is not JSON", "invalid_json") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"payload is JSON {type(doc).__name__}, not an object", "invalid_json")
    reading: dict[str, Any] = {}
    for key, (name, lo, hi) in JSON_FIELDS.items():
        if key not in doc or name in reading:
            continue
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(f"{key}={value!r} is not a number", "malformed")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise DecodeError(f"{key}={value!r} is outside [{lo}, {hi}]", "out_of_range")
        if name == "steps":
            if value != int(value):
                raise DecodeError(f"steps={value!r} is not a whole number", "malformed")
            value = int(value)
        reading[name] = value
    if "fall" in doc:
        if not isinstance(doc["fall"], bool):
            raise DecodeError(f"fall={doc['fall']!r} is not true/false", "malformed")
        reading["fall"] = doc["fall"]
    if not reading:
        raise DecodeError("no wearable measurement in the message", "no_measurement")
    return reading


class BleMqttSource(RejectLog):
    """Consumes a gateway's BTtoMQTT topics; each reading carries its ``device_id``."""

    kind = "wearable"

    def __init__(
        self,
        mqtt_url: str,
        topic: str,
        devices: dict[str, str],
        client_id: str = "machi-ble",
        read_timeout_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.settings = Settings(mqtt_url=mqtt_url)
        self.base = topic.rstrip("/")
        self.devices = devices
        self.read_timeout_s = read_timeout_s
        # Persistent session: QoS 1 gateway messages wait on the broker while we reconnect.
        self.opts = MqttOptions(client_id=client_id, persistent=True)
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=10000)
        self._connected = threading.Event()
        self._client: mqtt.Client | None = None

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> BleMqttSource:
        topic = cfg.str_("topic", hint='add topic = "home" (the gateway base topic)')
        if any(c in topic for c in "+#\x00") or topic.strip("/") == "":
            raise cfg.error(f"topic {topic!r} must be the gateway base topic, without wildcards")
        url = cfg.str_("mqtt_url", hint='add mqtt_url = "mqtt://127.0.0.1:1883" (local broker)')
        Settings(mqtt_url=url).mqtt  # noqa: B018 - validates the URL, raises ConfigError
        return cls(
            url,
            topic,
            device_table(cfg),
            # A gateway carries many devices; its own device_id is optional (contract.rules).
            f"machi-ble-{cfg.id_('device_id', default=topic.strip('/').replace('/', '-'))}",
            cfg.float_("interval_s", 2.0, lo=0.05, hi=3600),
        )

    @property
    def filter(self) -> str:
        return f"{self.base}/BTtoMQTT/+"

    def open(self) -> None:
        self.close()
        client, url = make_client(self.settings, self.opts)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        connect(client, url, self.opts)
        client.loop_start()
        if not self._connected.wait(5.0):
            self.close()
            raise DeviceError(
                f"MQTT broker {url.redacted()} did not answer within 5 s; "
                "is the local broker running?"
            )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._connected.clear()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if not rc.is_failure:
            client.subscribe(self.filter, qos=1)
            self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any = None) -> None:
        self._connected.clear()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._queue.put_nowait((msg.topic, bytes(msg.payload)))
        except queue.Full:
            self.reject("queue_full", bytes(msg.payload[:256]))

    def read(self) -> list[dict[str, Any]]:
        if self._client is None or not self._connected.is_set():
            raise DeviceError("lost the connection to the gateway's MQTT broker; reopen")
        out: list[dict[str, Any]] = []
        try:
            item = self._queue.get(timeout=self.read_timeout_s)
        except queue.Empty:
            return out
        while True:
            reading = self._handle(*item)
            if reading is not None:
                out.append(reading)
            if len(out) >= MAX_BATCH:
                return out
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out

    def _handle(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        try:
            try:
                mac = normalize_mac(topic.rsplit("/", 1)[-1])
            except ValueError:
                raise DecodeError("topic does not end in a MAC address", "bad_topic") from None
            device_id = self.devices.get(mac)
            if device_id is None:
                raise DecodeError("wearable not in the devices table", "unknown_device")
            return {"device_id": device_id, **decode_gateway_json(payload)}
        except DecodeError as exc:
            self.reject(exc.reason, topic.encode() + b" " + payload)
            return None
