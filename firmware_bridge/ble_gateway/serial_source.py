"""BLE gateway on a serial port (line framing in :mod:`.framing`) -> wearable readings."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firmware_bridge.base import DecodeError
from firmware_bridge.ble_gateway.devices import device_table
from firmware_bridge.ble_gateway.framing import MAX_LINE, decode_line
from firmware_bridge.ble_gateway.gatt import DEVICE_TZ, to_reading
from firmware_bridge.config import SourceConfig
from firmware_bridge.serialport import LinePortSource

MAX_BATCH = 200


class BleSerialSource(LinePortSource):
    """Many wearables through one gateway: each reading carries its ``device_id``."""

    kind = "wearable"

    def __init__(
        self,
        port: str,
        devices: dict[str, str],
        baudrate: int = 115200,
        read_timeout_s: float = 2.0,
        device_tz: dt.tzinfo = DEVICE_TZ,
    ) -> None:
        super().__init__(port, baudrate, max_line=MAX_LINE + 1)
        self.devices = devices
        self.read_timeout_s = read_timeout_s
        self.device_tz = device_tz

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> BleSerialSource:
        return cls(
            cfg.str_("port", hint='add port = "/dev/serial/by-id/..."'),
            device_table(cfg),
            cfg.int_("baudrate", 115200, lo=300, hi=4_000_000),
            cfg.float_("interval_s", 2.0, lo=0.05, hi=3600),
            device_tz=_zone(cfg),
        )

    def read(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.read_timeout_s
        while len(out) < MAX_BATCH:
            # Once we have something, only take lines that are already buffered.
            left = 0.0 if out else deadline - time.monotonic()
            line = self._port.readline(max(left, 0.0))
            if line is None:
                break
            reading = self._handle(line)
            if reading is not None:
                out.append(reading)
        return out

    def _handle(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            note = decode_line(line)
            device_id = self.devices.get(note.mac)
            if device_id is None:
                raise DecodeError("wearable not in the devices table", "unknown_device")
            return {"device_id": device_id, **to_reading(note.uuid16, note.payload, self.device_tz)}
        except DecodeError as exc:
            self.reject(exc.reason, line)
            return None


def _zone(cfg: SourceConfig) -> dt.tzinfo:
    """``device_timezone``: the zone the wearables' clocks are set to (PLX Spot-Check
    timestamps carry none); default Asia/Tokyo."""
    name = cfg.str_("device_timezone", "Asia/Tokyo")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise cfg.error(
            f"device_timezone {name!r} is not an IANA zone name (e.g. Asia/Tokyo)"
        ) from None
