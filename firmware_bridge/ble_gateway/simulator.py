"""Simulated BLE gateways: framed serial notifications on a pty, or OMG JSON over MQTT.

Ground truth (``sim.sent`` / ``publisher.sent``) is ``{"mac": ..., <contract fields>}``
per intact notification: exactly what the source must emit (with ``device_id`` in
place of ``mac``).
"""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.mqtt import MqttOptions, connect, make_client
from contract.settings import Settings
from firmware_bridge.ble_gateway.framing import encode_line
from firmware_bridge.ble_gateway.gatt import BATTERY_LEVEL, HEART_RATE, PLX_CONTINUOUS
from firmware_bridge.pty import DeviceModel, Frame, PtySimulator

DEFAULT_MACS = ("C0FFEE000001", "C0FFEE000002")


def sfloat_bytes(mantissa: int, exponent: int) -> bytes:
    """Little-endian IEEE-11073 SFLOAT."""
    return struct.pack("<H", ((exponent & 0xF) << 12) | (mantissa & 0x0FFF))


def heart_rate_payload(bpm: int, rr_1024: tuple[int, ...] = ()) -> bytes:
    """0x2A37 with contact detected (flags bits 1+2), uint8 or uint16 value, RR list."""
    flags = 0x06 | (0x10 if rr_1024 else 0) | (0x01 if bpm > 255 else 0)
    value = struct.pack("<H", bpm) if bpm > 255 else bytes([bpm])
    return bytes([flags]) + value + b"".join(struct.pack("<H", r) for r in rr_1024)


def plx_payload(spo2_raw: bytes, pulse_raw: bytes) -> bytes:
    return b"\x00" + spo2_raw + pulse_raw


@dataclass
class BleModel(DeviceModel):
    """Each wearable sends HR, then PLX, then battery, round-robin every ``period_s``."""

    macs: tuple[str, ...] = DEFAULT_MACS
    period_s: float = 0.05
    nan_every: int = 4  # every n-th PLX carries SpO2 = NaN (0x07FF): field omitted
    _next: float = 0.0
    _n: int = 0
    _frames: list[Frame] = field(default_factory=list)

    def queue(self, frame: Frame) -> None:
        """Send ``frame`` on the next period, before the round-robin one."""
        self._frames.append(frame)

    def tick(self, now: float) -> list[Frame]:
        if now < self._next:
            return []
        self._next = now + self.period_s
        if self._frames:
            return [self._frames.pop(0)]
        self._n += 1
        mac = self.macs[self._n % len(self.macs)]
        step = self._n % 3
        if step == 0:
            bpm = 60 + self._n % 40
            payload = heart_rate_payload(bpm, (800 + self._n % 100, 790))
            return [
                Frame(encode_line(mac, HEART_RATE, payload), {"mac": mac, "heart_rate_bpm": bpm})
            ]
        if step == 1:
            spo2_tenths = 950 + self._n % 40
            pulse = 70 + self._n % 10
            truth: dict[str, Any] = {"mac": mac, "heart_rate_bpm": float(pulse)}
            if self._n % (3 * self.nan_every) == 1:
                spo2 = struct.pack("<H", 0x07FF)
            else:
                spo2 = sfloat_bytes(spo2_tenths, -1)
                truth["spo2_pct"] = spo2_tenths / 10
            return [
                Frame(
                    encode_line(mac, PLX_CONTINUOUS, plx_payload(spo2, sfloat_bytes(pulse, 0))),
                    truth,
                )
            ]
        batt = 100 - self._n % 50
        return [
            Frame(encode_line(mac, BATTERY_LEVEL, bytes([batt])), {"mac": mac, "battery_pct": batt})
        ]

    def corrupt_checksum(self, raw: bytes) -> bytes:
        star = raw.rindex(b"*")
        cs = int(raw[star + 1 : star + 3], 16) ^ 0x5A
        return raw[: star + 1] + b"%02X" % cs + raw[star + 3 :]


class BleSerialSimulator(PtySimulator):
    """``with BleSerialSimulator(tmp_path) as sim: BleSerialSource(str(sim.path), ...)``."""

    def __init__(self, directory: str | Path, link_name: str = "ble", **model: Any) -> None:
        super().__init__(directory, BleModel(**model), link_name)
        self.ble: BleModel = self.model  # type: ignore[assignment]

    def notify(
        self, mac: str, uuid16: int, payload: bytes, truth: dict[str, Any] | None = None
    ) -> None:
        """Queue one notification (``truth``: the contract fields it must give, if any)."""
        self.ble.queue(Frame(encode_line(mac, uuid16, payload), truth and {"mac": mac, **truth}))


class GatewayPublisher:
    """Publishes OpenMQTTGateway-style JSON to ``<base>/BTtoMQTT/<MAC>`` (QoS 1)."""

    def __init__(self, settings: Settings, base: str) -> None:
        self.base = base
        self.sent: list[dict[str, Any]] = []
        self.opts = MqttOptions(client_id=f"sim-omg-{time.monotonic_ns()}")
        self.client, url = make_client(settings, self.opts)
        ready = threading.Event()
        self.client.on_connect = lambda *_a: ready.set()
        connect(self.client, url, self.opts)
        self.client.loop_start()
        if not ready.wait(5):
            self.close()
            raise ConnectionError(f"gateway simulator: no CONNACK from {url.redacted()}")

    def publish(
        self, mac: str, doc: dict[str, Any] | bytes, truth: dict[str, Any] | None = None
    ) -> None:
        """Publish one message; ``truth`` (contract fields) is recorded when given."""
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        info = self.client.publish(f"{self.base}/BTtoMQTT/{mac}", payload, qos=1)
        info.wait_for_publish(5)
        if truth is not None:
            self.sent.append({"mac": mac, **truth})

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
