"""A scripted in-memory Source for unit tests of the agent (end-to-end tests use ptys)."""

from __future__ import annotations

import threading
import time
from typing import Any

from firmware_bridge.base import DeviceError


class ScriptedSource:
    """Returns ``per_read`` energy readings every ``interval_s``; can be made to fail.

    ``fail`` set -> every open/read raises DeviceError until it is cleared. ``bad_every``
    makes every n-th reading violate the contract (negative energy).
    """

    kind = "energy_meter"

    def __init__(
        self, per_read: int = 1, interval_s: float = 0.01, bad_every: int = 0, kind: str = ""
    ) -> None:
        self.per_read = per_read
        self.interval_s = interval_s
        self.bad_every = bad_every
        if kind:
            self.kind = kind
        self.fail = threading.Event()
        self.counter = 0
        self.opens = 0
        self.closes = 0
        self.rejects: list[tuple[str, bytes]] = []

    def open(self) -> None:
        if self.fail.is_set():
            raise DeviceError("scripted: device not there")
        self.opens += 1

    def read(self) -> list[dict[str, Any]]:
        time.sleep(self.interval_s)
        if self.fail.is_set():
            raise DeviceError("scripted: device vanished")
        out = []
        for _ in range(self.per_read):
            self.counter += 1
            bad = self.bad_every and self.counter % self.bad_every == 0
            out.append({"power_w": float(self.counter), "energy_import_kwh": -1.0 if bad else 1.5})
        return out

    def take_rejects(self) -> list[tuple[str, bytes]]:
        out, self.rejects = self.rejects, []
        return out

    def close(self) -> None:
        self.closes += 1


class CrashingSource(ScriptedSource):
    """A driver with a bug: read() raises a plain exception (not DeviceError)."""

    def read(self) -> list[dict[str, Any]]:
        time.sleep(self.interval_s)
        raise RuntimeError("driver bug")
