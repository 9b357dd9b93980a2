"""City-fleet simulator: realistic contract v1 telemetry for meters, wearables and buses.

Used by ``machi simulate``, the demo, the tests and the benchmarks. Values follow daily
patterns (household/factory load curves with rooftop PV, resting heart rates with
activity, buses moving along routes) and counters are cumulative, as real devices send.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from contract.schema import Message, make_message
from contract.settings import Settings
from machi.testkit.publish import Publisher

# Districts of a mid-sized coastal industrial city (fictional, romanised).
SITES = ("minato", "kogyo", "ekimae", "yamate", "kaigan", "chuo")
CITY_CENTER = (36.59, 140.64)  # a Pacific-coast industrial city in Ibaraki, TEPCO grid


def _daily(t_ms: int, peak_hour: float, width_h: float = 3.0) -> float:
    """A smooth bump (0..1) around ``peak_hour`` local time (JST = UTC+9)."""
    hour = ((t_ms / 3_600_000) + 9) % 24
    d = min(abs(hour - peak_hour), 24 - abs(hour - peak_hour))
    return math.exp(-((d / width_h) ** 2))


@dataclass
class Device:
    device_id: str
    kind: str
    site: str
    rng: random.Random
    seq: int = 0

    def reading(self, t_ms: int, dt_s: float) -> dict[str, object]:
        raise NotImplementedError


@dataclass
class Meter(Device):
    factory: bool = False
    pv_kw: float = 0.0
    import_kwh: float = 0.0
    export_kwh: float = 0.0

    def reading(self, t_ms: int, dt_s: float) -> dict[str, object]:
        r = self.rng
        if self.factory:
            # Shift work: flat daytime load with a lunch dip.
            load = 40_000 * (0.35 + 0.6 * _daily(t_ms, 13, 5) - 0.1 * _daily(t_ms, 12, 0.5))
        else:
            load = 300 + 900 * _daily(t_ms, 7.5, 1.2) + 1500 * _daily(t_ms, 19.5, 2.0)
        pv = self.pv_kw * 1000 * max(0.0, _daily(t_ms, 12, 2.8) - 0.05)
        power = load * r.uniform(0.9, 1.1) - pv
        kwh = power * dt_s / 3_600_000
        if kwh >= 0:
            self.import_kwh += kwh
        else:
            self.export_kwh -= kwh
        voltage = r.gauss(202.0 if self.factory else 101.0, 1.0)
        return {
            "t": t_ms,
            "power_w": round(power, 1),
            "energy_import_kwh": round(self.import_kwh, 4),
            "energy_export_kwh": round(self.export_kwh, 4),
            "voltage_v": round(voltage, 1),
            "current_a": round(abs(power) / voltage, 2),
        }


@dataclass
class Wearable(Device):
    resting_hr: float = 68.0
    steps: int = 0
    battery: float = 100.0
    #: chance per reading of an anomaly (high/low HR, low SpO2, a fall)
    anomaly_rate: float = 0.0005
    _anomaly_left: int = 0
    _anomaly: str = ""

    def reading(self, t_ms: int, dt_s: float) -> dict[str, object]:
        r = self.rng
        activity = _daily(t_ms, 10, 2) + 0.6 * _daily(t_ms, 16, 2)
        hr = self.resting_hr + 25 * activity * r.random() + r.gauss(0, 2)
        spo2 = min(100.0, r.gauss(97, 0.8))
        fall = False
        if self._anomaly_left <= 0 and r.random() < self.anomaly_rate:
            self._anomaly = r.choice(("hr_high", "hr_low", "spo2_low", "fall"))
            self._anomaly_left = int(90 / max(dt_s, 0.1)) + 1
        if self._anomaly_left > 0:
            self._anomaly_left -= 1
            if self._anomaly == "hr_high":
                hr = r.uniform(125, 150)
            elif self._anomaly == "hr_low":
                hr = r.uniform(38, 47)
            elif self._anomaly == "spo2_low":
                spo2 = r.uniform(84, 89)
            elif self._anomaly == "fall":
                fall = True
                self._anomaly_left = 0
        self.steps += int(activity * dt_s * r.uniform(0, 1.5))
        self.battery = max(5.0, self.battery - dt_s / 3600 * 1.5)
        return {
            "t": t_ms,
            "heart_rate_bpm": round(hr, 1),
            "spo2_pct": round(spo2, 1),
            "skin_temp_c": round(r.gauss(33.5, 0.3), 2),
            "steps": self.steps,
            "battery_pct": round(self.battery, 1),
            "fall": fall,
        }


@dataclass
class Bus(Device):
    route_id: str = "R1"
    path: list[tuple[float, float]] = field(default_factory=list)
    position_m: float = 0.0
    trip_no: int = 0

    def reading(self, t_ms: int, dt_s: float) -> dict[str, object]:
        r = self.rng
        speed = max(0.0, r.gauss(24, 8)) if r.random() > 0.15 else 0.0  # stops and lights
        self.position_m += speed / 3.6 * dt_s
        lat, lon, heading, lap = _along(self.path, self.position_m)
        return {
            "t": t_ms,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "route_id": self.route_id,
            "speed_kmh": round(speed, 1),
            "heading_deg": round(heading, 1),
            "trip_id": f"{self.route_id}-{self.device_id}-{lap}",
            "occupancy_pct": round(min(100.0, max(0.0, r.gauss(45, 20))), 0),
        }


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * 111_320
    dlon = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


def _along(path: list[tuple[float, float]], pos_m: float) -> tuple[float, float, float, int]:
    """Point, heading and lap number at ``pos_m`` metres along a closed loop."""
    legs = [(a, b, _metres(a, b)) for a, b in zip(path, path[1:] + path[:1], strict=True)]
    total = sum(d for _, _, d in legs) or 1.0
    lap, rem = divmod(pos_m, total)
    for a, b, d in legs:
        if rem <= d:
            f = rem / d if d else 0.0
            heading = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])) % 360
            return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, heading, int(lap)
        rem -= d
    a = path[0]
    return a[0], a[1], 0.0, int(lap)


def route_loop(rng: random.Random, n: int = 8, radius_km: float = 3.0) -> list[tuple[float, float]]:
    lat0, lon0 = CITY_CENTER
    pts = []
    for i in range(n):
        ang = 2 * math.pi * i / n
        rad = radius_km * rng.uniform(0.6, 1.0) / 111.32
        pts.append(
            (lat0 + rad * math.sin(ang), lon0 + rad * math.cos(ang) / math.cos(math.radians(lat0)))
        )
    return pts


def make_meter(
    rng: random.Random, device_id: str, index: int, factory: bool, pv_choices: tuple[float, ...]
) -> Meter:
    """Meter number ``index`` of a fleet, its own random stream seeded from ``rng``.

    Factories stand in the industrial district with 50 kW of PV; homes are spread over
    the districts by index with a rooftop PV size drawn from ``pv_choices``.
    """
    stream = random.Random(rng.random())
    return Meter(
        device_id,
        "energy_meter",
        "kogyo" if factory else SITES[index % len(SITES)],
        stream,
        factory=factory,
        pv_kw=50.0 if factory else rng.choice(pv_choices),
        import_kwh=rng.uniform(1000, 20000),
    )


def make_wearable(
    rng: random.Random, device_id: str, site: str, anomaly_rate: float = Wearable.anomaly_rate
) -> Wearable:
    """A wearable with its own random stream seeded from ``rng`` and a drawn resting HR."""
    stream = random.Random(rng.random())
    resting_hr = rng.uniform(58, 78)
    return Wearable(
        device_id, "wearable", site, stream, resting_hr=resting_hr, anomaly_rate=anomaly_rate
    )


@dataclass
class Fleet:
    devices: list[Device]

    @classmethod
    def build(
        cls, meters: int = 10, wearables: int = 10, buses: int = 3, seed: int = 1, prefix: str = ""
    ) -> Fleet:
        rng = random.Random(seed)
        routes = {f"R{i + 1}": route_loop(rng) for i in range(max(1, min(buses, 4)))}
        devices: list[Device] = []
        for i in range(meters):
            pv_choices = (0.0, 0.0, 3.5, 5.0)
            devices.append(make_meter(rng, f"{prefix}meter-{i:04d}", i, i % 10 == 9, pv_choices))
        for i in range(wearables):
            devices.append(make_wearable(rng, f"{prefix}care-{i:04d}", SITES[i % len(SITES)]))
        for i in range(buses):
            rid = f"R{i % len(routes) + 1}"
            devices.append(
                Bus(
                    f"{prefix}bus-{i:03d}",
                    "bus",
                    "ekimae",
                    random.Random(rng.random()),
                    route_id=rid,
                    path=routes[rid],
                    position_m=rng.uniform(0, 5000),
                )
            )
        return cls(devices)

    def messages(self, t_ms: int, interval_s: float, per_message: int) -> Iterator[Message]:
        """One message per device with ``per_message`` readings spaced ``interval_s``
        apart, the last one at ``t_ms``."""
        step_ms = int(interval_s * 1000)
        for d in self.devices:
            readings = [
                d.reading(t_ms - (per_message - 1 - k) * step_ms, interval_s)
                for k in range(per_message)
            ]
            yield make_message(d.kind, d.device_id, d.site, d.seq, readings)
            d.seq += 1


@dataclass
class SimStats:
    messages: int = 0
    readings: int = 0


def run_simulation(
    settings: Settings,
    fleet: Fleet,
    interval_s: float = 1.0,
    per_message: int = 1,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    client_id: str = "machi-simulator",
    on_tick: Callable[[SimStats], None] | None = None,
) -> SimStats:
    """Publish in real time: every ``interval_s * per_message`` seconds each device sends
    one message. Returns what was published (all acknowledged by the broker)."""
    stop = stop or threading.Event()
    pub = Publisher(settings, client_id)
    stats = SimStats()
    period = interval_s * per_message
    start = time.monotonic()
    next_tick = start
    try:
        while not stop.is_set():
            if duration_s is not None and time.monotonic() - start >= duration_s:
                break
            t_ms = time.time_ns() // 1_000_000
            for msg in fleet.messages(t_ms, interval_s, per_message):
                pub.publish(msg)
                stats.messages += 1
                stats.readings += len(msg.readings)
            if on_tick:
                on_tick(stats)
            next_tick += period
            stop.wait(max(0.0, next_tick - time.monotonic()))
    finally:
        pub.close()
    return stats
