"""Device problems from wearable telemetry: silent, battery low, off the body.

* ``silent``: a wearable that has reported before sends nothing for ``silent_after_s``
  (default 600 s). The episode time is its last reading's time + the threshold, so two
  events workers derive the same episode; the first reading after it closes it.
* ``battery_low``: a reading under ``battery_low_pct`` (default 15 %) opens it; one at
  or above ``battery_low_pct + 5`` closes it (the hysteresis keeps a battery hovering at
  the threshold from flapping).
* ``off_body``: ``off_body: true`` opens it, ``off_body: false`` closes it.

They are published on the same alert stream as care episodes (``type`` tells them
apart) and stored in the ``device_alert`` measurement, so care KPIs never count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.events import DEVICE_ALERT
from contract.schema import WearableReading
from ingest.events.care import AlertEvent

__all__ = ["DeviceRules", "DeviceTracker"]

BATTERY_HYSTERESIS_PCT = 5.0


@dataclass(frozen=True)
class DeviceRules:
    silent_after_s: float = 600.0
    battery_low_pct: float = 15.0


@dataclass
class _Dev:
    site: str
    last_t: int = -1
    open_ms: dict[str, int] = field(default_factory=dict)  # type -> episode_ms


class DeviceTracker:
    def __init__(self, rules: DeviceRules | None = None) -> None:
        self.rules = rules or DeviceRules()
        self.devices: dict[str, _Dev] = {}

    def restore_seen(self, device_id: str, site: str, t: int) -> None:
        dev = self.devices.setdefault(device_id, _Dev(site))
        dev.last_t = max(dev.last_t, t)

    def restore(
        self, device_id: str, site: str, alert_type: str, state: str, episode_ms: int
    ) -> None:
        dev = self.devices.setdefault(device_id, _Dev(site))
        if state == "open":
            dev.open_ms[alert_type] = episode_ms
        else:
            dev.open_ms.pop(alert_type, None)

    def _event(
        self, device_id: str, dev: _Dev, typ: str, state: str, value: float, episode: int, t: int
    ) -> AlertEvent:
        return AlertEvent(device_id, dev.site, typ, state, value, episode, t, DEVICE_ALERT)

    def process(
        self, device_id: str, site: str, readings: list[WearableReading]
    ) -> list[AlertEvent]:
        dev = self.devices.setdefault(device_id, _Dev(site))
        dev.site = site
        out: list[AlertEvent] = []
        low = self.rules.battery_low_pct
        for rd in sorted(readings, key=lambda x: x.t):
            if rd.t <= dev.last_t:
                continue  # redelivered or late
            silent = dev.open_ms.pop("silent", None)
            if silent is not None:
                gap = (rd.t - dev.last_t) / 1000 if dev.last_t >= 0 else 0.0
                out.append(self._event(device_id, dev, "silent", "closed", gap, silent, rd.t))
            dev.last_t = rd.t
            if rd.battery_pct is not None:
                b = rd.battery_pct
                if b < low and "battery_low" not in dev.open_ms:
                    dev.open_ms["battery_low"] = rd.t
                    out.append(self._event(device_id, dev, "battery_low", "open", b, rd.t, rd.t))
                elif b >= low + BATTERY_HYSTERESIS_PCT and "battery_low" in dev.open_ms:
                    ep = dev.open_ms.pop("battery_low")
                    out.append(self._event(device_id, dev, "battery_low", "closed", b, ep, rd.t))
            if rd.off_body is True and "off_body" not in dev.open_ms:
                dev.open_ms["off_body"] = rd.t
                out.append(self._event(device_id, dev, "off_body", "open", 1.0, rd.t, rd.t))
            elif rd.off_body is False and "off_body" in dev.open_ms:
                ep = dev.open_ms.pop("off_body")
                out.append(self._event(device_id, dev, "off_body", "closed", 0.0, ep, rd.t))
        return out

    def silent(self, now_ms: int) -> list[AlertEvent]:
        """Open a ``silent`` episode for every wearable quiet for the threshold."""
        limit = int(self.rules.silent_after_s * 1000)
        out = []
        for device_id, dev in self.devices.items():
            if dev.last_t < 0 or "silent" in dev.open_ms or now_ms - dev.last_t < limit:
                continue
            ep = dev.last_t + limit
            dev.open_ms["silent"] = ep
            out.append(
                self._event(device_id, dev, "silent", "open", self.rules.silent_after_s, ep, ep)
            )
        return out
