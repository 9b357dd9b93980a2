"""Contract-conformant demo data for the dashboard tests, with known answers.

Raw telemetry goes through ``make_message`` + ``message_lines`` (the ingest path's
serializer), derived measurements through ``contract.lineprotocol.line``.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract import events
from contract.lineprotocol import line, message_lines
from contract.schema import make_message

STEP_MS = 5 * 60_000
STEPS = 36  # 3 hours of 5-minute readings

# Site ids with a '.' prove the multi-value regex escaping (an unescaped '.' matches any char).
BIG_SITE = "kita.1"  # enough residents: care aggregates visible
SMALL_SITE = "minami"  # fewer than k residents: care aggregates hidden
BIG_RESIDENTS = 12  # >= the public k (10), and 12 hr_high alerts >= the small count
SMALL_RESIDENTS = 3
METERS_PER_SITE = 3
KWH_PER_STEP = 0.25
EXPORT_PER_STEP = 0.05
ROUTES = ("r1", "r-2")
DELAYS_S = (-120.0, -60.0, 0.0, 30.0, 300.0, 301.0, 90.0, 600.0)  # 5 of 8 on time


@dataclass(frozen=True)
class Demo:
    start_ms: int
    end_ms: int
    lines: list[str]


def _raw(kind: str, device: str, site: str, readings: list[dict]) -> list[str]:
    return message_lines(make_message(kind, device, site, 1, readings))


def energy(start: int) -> list[str]:
    out = []
    for site in (BIG_SITE, SMALL_SITE):
        for m in range(METERS_PER_SITE):
            readings = []
            for i in range(STEPS):
                # meter m0 of the small site is reset half-way (register back to 0): the
                # negative step must not count.
                base = (
                    i if not (site == SMALL_SITE and m == 0 and i >= STEPS // 2) else i - STEPS // 2
                )
                readings.append(
                    {
                        "t": start + i * STEP_MS,
                        "power_w": 1200.0 - 400.0 * m,
                        "energy_import_kwh": 100.0 * m + base * KWH_PER_STEP,
                        "energy_export_kwh": 10.0 + i * EXPORT_PER_STEP,
                    }
                )
            out += _raw("energy_meter", f"em-{site}-{m}", site, readings)
    return out


def expected_import_kwh(site: str) -> float:
    steps = METERS_PER_SITE * (STEPS - 1)
    if site == SMALL_SITE:
        steps -= 1  # the reset step: the new counter reads 0, so its increment is 0
    return steps * KWH_PER_STEP


def wearables(start: int) -> list[str]:
    out = []
    for site, n in ((BIG_SITE, BIG_RESIDENTS), (SMALL_SITE, SMALL_RESIDENTS)):
        for r in range(n):
            dev = f"wr-{site}-{r}"
            readings = [
                {
                    "t": start + i * STEP_MS,
                    "heart_rate_bpm": 60.0 + r,
                    "spo2_pct": 97.0,
                    "skin_temp_c": 33.5,
                    "steps": 10 * i,
                    "battery_pct": 90.0 - i,
                }
                for i in range(STEPS)
            ]
            out += _raw("wearable", dev, site, readings)
            # Every big-site resident had an hr_high; two small-site residents fell.
            kind, value = ("hr_high", 130.0) if site == BIG_SITE else ("fall", 1.0)
            if site == BIG_SITE or r < 2:
                t = start + (r + 1) * STEP_MS
                tags = {"device_id": dev, "site": site, "type": kind}
                out.append(
                    line(
                        events.CARE_ALERT,
                        tags,
                        {"state": "open", "value": value, "episode_ms": t},
                        t,
                    )
                )
                out.append(
                    line(
                        events.CARE_ALERT,
                        tags,
                        {"state": "closed", "value": value, "episode_ms": t},
                        t + STEP_MS,
                    )
                )
    return out


def expected_mean_hr(site: str) -> float:
    n = BIG_RESIDENTS if site == BIG_SITE else SMALL_RESIDENTS
    return 60.0 + (n - 1) / 2


def buses(start: int) -> list[str]:
    out = []
    for ri, route in enumerate(ROUTES):
        for b in range(2):
            dev = f"bus-{route}-{b}"
            readings = [
                {
                    "t": start + i * STEP_MS,
                    "lat": 35.0 + i * 0.001,
                    "lon": 139.0 + b * 0.01,
                    "route_id": route,
                    "speed_kmh": 20.0 + 10 * ri,
                    "heading_deg": 90.0,
                    "trip_id": f"trip {route} {b}",
                    "occupancy_pct": 50.0,
                }
                for i in range(STEPS)
            ]
            out += _raw("bus", dev, BIG_SITE, readings)
            for i, delay in enumerate(DELAYS_S):
                t = start + (i + 1) * STEP_MS + b
                tags = {"device_id": dev, "route_id": route, "site": BIG_SITE, "stop_id": f"s{i}"}
                fields = {
                    "delay_s": delay,
                    "trip_id": f"trip {route} {b}",
                    "scheduled_ms": t - int(delay * 1000),
                }
                out.append(line(events.BUS_ARRIVAL, tags, fields, t))
    return out


def platform(start: int) -> list[str]:
    out = []
    for i in range(STEPS):
        t = start + i * STEP_MS
        for w in ("w0", "w1"):
            out.append(
                line(
                    events.INGEST_STATS,
                    {"worker": w},
                    {
                        "messages": 10 * i,
                        "readings": 100 * i,
                        "rejected": i,
                        "lag_s": 0.5,
                        "pending": 3,
                    },
                    t,
                )
            )
            for reason in ("schema", "time_range"):
                out.append(
                    line(events.INGEST_REJECTS, {"worker": w, "reason": reason}, {"count": i}, t)
                )
        for a in range(3):
            out.append(
                line(
                    events.AGENT_STATUS,
                    {"agent_id": f"agent-{a}"},
                    {
                        "online": a != 2,
                        "outbox_depth": i % 7,
                        "outbox_bytes": 1000 * (i % 7),
                        "dropped": 0,
                        "published": 50 * i,
                        "sources_unhealthy": 0,
                    },
                    t,
                )
            )
    return out


def alerts(start: int) -> list[str]:
    """Alert states (one point per alert) and channel counters of two alerts instances."""
    out = []
    for i in range(12):
        state = ("open", "acked", "resolved")[i % 3]
        tags = {"device_id": f"w{i}", "site": BIG_SITE if i % 2 else SMALL_SITE,
                "type": "fall", "priority": "high"}  # fmt: skip
        ack_s = None if state == "open" else 10.0 * i
        fields = {"alert_id": f"{i:024x}", "state": state, "tier": 1 + i % 2,
                  "escalated": i % 2 == 1, "ack_s": ack_s}  # fmt: skip
        out.append(line(events.ALERT_STATE, tags, fields, start + i * STEP_MS))
    for i in range(STEPS):
        for inst in ("a", "b"):
            out.append(
                line(
                    events.ALERTS_STATS,
                    {"instance": inst, "scheme": "mailto"},
                    {"sent": 3 * i, "failures": i},
                    start + i * STEP_MS,
                )
            )
    return out


def demo(now_ms: int) -> Demo:
    start = now_ms - STEPS * STEP_MS
    lines = energy(start) + wearables(start) + buses(start) + platform(start) + alerts(start)
    return Demo(start - STEP_MS, now_ms, lines)
