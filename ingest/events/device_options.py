"""Options of the events worker's device alerts (see contract.options and devices.py)."""

from __future__ import annotations

from contract.options import Options, option
from ingest.events.devices import DeviceRules

__all__ = ["DeviceAlertOptions"]


class DeviceAlertOptions(Options):
    device_alerts: bool = option(
        True, env="MACHI_EVENTS_DEVICE_ALERTS", help="derive silent / battery_low / off_body alerts"
    )
    silent_after_s: float = option(
        600.0,
        env="MACHI_EVENTS_SILENT_AFTER_S",
        ge=1,
        le=7 * 86400,
        help="a wearable that reported before and then sends nothing this long is silent",
    )
    battery_low_pct: float = option(
        15.0,
        env="MACHI_EVENTS_BATTERY_LOW_PCT",
        ge=0,
        le=95,
        help="battery alert threshold, percent",
    )

    def device_rules(self) -> DeviceRules | None:
        if not self.device_alerts:
            return None
        return DeviceRules(self.silent_after_s, self.battery_low_pct)
