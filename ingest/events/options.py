"""``machi events run``'s option table: one declaration per option (see contract.options)."""

from __future__ import annotations

from pathlib import Path

from contract.options import ConnectionOptions, option
from contract.settings import ConfigError
from ingest.binding import BindingOptions
from ingest.events.care import CareRules
from ingest.events.device_options import DeviceAlertOptions

__all__ = ["EventsRunOptions"]


class EventsRunOptions(ConnectionOptions, DeviceAlertOptions, BindingOptions):
    """Options of the events worker (care alert rules, device alerts, GTFS arrivals)."""

    client_id: str = option(
        "machi-events", env="MACHI_EVENTS_CLIENT_ID", help="fixed id of the persistent session"
    )
    gtfs: Path | None = option(
        None, env="MACHI_GTFS", help="GTFS static zip for bus arrivals (none: no arrivals)"
    )
    radius_m: float = option(
        50.0, env="MACHI_EVENTS_RADIUS_M", gt=0, le=1000, help="stop radius in metres"
    )
    hr_low: float = option(50.0, env="MACHI_CARE_HR_LOW", gt=0, le=300, help="low heart rate, bpm")
    hr_high: float = option(
        120.0, env="MACHI_CARE_HR_HIGH", gt=0, le=300, help="high heart rate, bpm"
    )
    hr_sustain_s: float = option(
        60.0,
        env="MACHI_CARE_HR_SUSTAIN_S",
        ge=0,
        le=3600,
        help="seconds a heart rate must stay out of bounds before an alert",
    )
    spo2_low: float = option(
        90.0, env="MACHI_CARE_SPO2_LOW", gt=0, le=100, help="low SpO2, percent"
    )

    def care_rules(self) -> CareRules:
        try:
            return CareRules(
                hr_low_bpm=self.hr_low,
                hr_high_bpm=self.hr_high,
                hr_sustain_s=self.hr_sustain_s,
                spo2_low_pct=self.spo2_low,
            )
        except ValueError as exc:
            raise ConfigError(f"--hr-low/--hr-high (MACHI_CARE_HR_LOW/HIGH): {exc}") from None
