"""Care alert episodes from wearable readings: one episode = one open (+ one close).

Rules per device and alert type (defaults, all configurable):

* ``hr_high`` / ``hr_low``: heart rate above 120 / below 50 bpm for at least 60 s
  (every reading in between abnormal). The alert opens at the reading that completes
  the 60 s.
* ``spo2_low``: SpO2 below 90 %, opens on the first such reading.
* ``fall``: a reading with ``fall: true`` opens it.

An open episode closes at the first normal reading of its type that comes at least
``clear_s`` (60 s; 300 s for falls) after the last abnormal one; the hysteresis keeps a
flapping sensor from opening an episode per reading.

Readings at or before the last one processed for a device are skipped: redelivered
messages cannot open a second episode (late, out-of-order readings are ignored for
alerting; they are still stored by ingest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contract.events import ALERT_TYPES, CARE_ALERT
from contract.lineprotocol import line
from contract.schema import WearableReading


@dataclass(frozen=True)
class CareRules:
    hr_low_bpm: float = 50.0
    hr_high_bpm: float = 120.0
    hr_sustain_s: float = 60.0
    spo2_low_pct: float = 90.0
    clear_s: float = 60.0
    fall_clear_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.hr_low_bpm < self.hr_high_bpm:
            raise ValueError(
                f"heart-rate bounds {self.hr_low_bpm}..{self.hr_high_bpm} bpm are invalid: "
                "need 0 < low < high"
            )


@dataclass(frozen=True)
class AlertEvent:
    device_id: str
    site: str
    type: str
    state: str  # "open" | "closed"
    value: float
    episode_ms: int
    t: int
    measurement: str = CARE_ALERT

    def line(self) -> str:
        return line(
            self.measurement,
            {"device_id": self.device_id, "site": self.site, "type": self.type},
            {"state": self.state, "value": float(self.value), "episode_ms": self.episode_ms},
            self.t,
        )

    def payload(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "site": self.site,
            "type": self.type,
            "state": self.state,
            "value": self.value,
            "episode_ms": self.episode_ms,
            "t": self.t,
        }


@dataclass
class _Episode:
    open_ms: int | None = None
    abnormal_since: int | None = None
    last_abnormal: int | None = None


@dataclass
class _Device:
    last_t: int = -1
    episodes: dict[str, _Episode] = field(
        default_factory=lambda: {t: _Episode() for t in ALERT_TYPES}
    )


class CareTracker:
    """Per-device episode state; feed it readings in order, get state changes back."""

    def __init__(self, rules: CareRules | None = None) -> None:
        self.rules = rules or CareRules()
        self.devices: dict[str, _Device] = {}

    def restore(self, device_id: str, alert_type: str, state: str, episode_ms: int, t: int) -> None:
        """Seed state from the last ``care_alert`` point of (device, type)."""
        dev = self.devices.setdefault(device_id, _Device())
        dev.last_t = max(dev.last_t, t)
        if alert_type in dev.episodes and state == "open":
            ep = dev.episodes[alert_type]
            ep.open_ms, ep.last_abnormal = episode_ms, t

    def open_episodes(self) -> int:
        return sum(
            ep.open_ms is not None for d in self.devices.values() for ep in d.episodes.values()
        )

    def process(
        self, device_id: str, site: str, readings: list[WearableReading]
    ) -> list[AlertEvent]:
        dev = self.devices.setdefault(device_id, _Device())
        out: list[AlertEvent] = []
        r = self.rules
        for rd in sorted(readings, key=lambda x: x.t):
            if rd.t <= dev.last_t:
                continue  # redelivered or late: already accounted for
            dev.last_t = rd.t
            checks: list[tuple[str, bool, float, float, float]] = []
            if rd.heart_rate_bpm is not None:
                hr = rd.heart_rate_bpm
                checks.append(("hr_high", hr > r.hr_high_bpm, hr, r.hr_sustain_s, r.clear_s))
                checks.append(("hr_low", hr < r.hr_low_bpm, hr, r.hr_sustain_s, r.clear_s))
            if rd.spo2_pct is not None:
                checks.append(
                    ("spo2_low", rd.spo2_pct < r.spo2_low_pct, rd.spo2_pct, 0.0, r.clear_s)
                )
            checks.append(("fall", rd.fall is True, 1.0 if rd.fall else 0.0, 0.0, r.fall_clear_s))
            for typ, abnormal, value, sustain_s, clear_s in checks:
                ev = self._step(dev.episodes[typ], abnormal, rd.t, sustain_s, clear_s)
                if ev is not None:
                    state, episode_ms = ev
                    out.append(AlertEvent(device_id, site, typ, state, value, episode_ms, rd.t))
        return out

    @staticmethod
    def _step(
        ep: _Episode, abnormal: bool, t: int, sustain_s: float, clear_s: float
    ) -> tuple[str, int] | None:
        if abnormal:
            ep.last_abnormal = t
            if ep.open_ms is not None:
                return None
            if ep.abnormal_since is None:
                ep.abnormal_since = t
            if t - ep.abnormal_since >= sustain_s * 1000:
                ep.open_ms, ep.abnormal_since = t, None
                return "open", t
            return None
        ep.abnormal_since = None
        if ep.open_ms is not None and t - (ep.last_abnormal or t) >= clear_s * 1000:
            opened, ep.open_ms = ep.open_ms, None
            return "closed", opened
        return None
