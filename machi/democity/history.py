"""Days of demo-city history written straight into InfluxDB (tests and benchmarks).

The telemetry is the demo fleet's own (``fleet.messages`` -> contract line protocol);
the derived measurements the events worker would write (``care_alert`` episodes and
``bus_arrival`` matches) are drawn from seeded random streams, so a test knows the
data is realistic in shape without running the whole pipeline for days of history.
"""

from __future__ import annotations

import random

from contract.events import ALERT_TYPES, BUS_ARRIVAL, CARE_ALERT
from contract.influx import InfluxV1
from contract.lineprotocol import line, message_lines
from machi.simulate import Fleet

__all__ = ["write_history"]


def write_history(
    influx: InfluxV1,
    fleet: Fleet,
    start_ms: int,
    end_ms: int,
    interval_s: float = 300.0,
    seed: int = 3,
    alerts_per_day: float = 0.3,
    batch: int = 5000,
) -> int:
    """Write the fleet's readings over ``[start_ms, end_ms)`` every ``interval_s``,
    plus care alert episodes (per wearable per day) and bus stop arrivals; the number
    of lines written."""
    rng = random.Random(seed)
    lines: list[str] = []
    written = 0

    def flush(force: bool = False) -> None:
        nonlocal written
        if lines and (force or len(lines) >= batch):
            r = influx.write_lines("\n".join(lines).encode())
            if r.status_code != 204:
                raise RuntimeError(f"InfluxDB refused the history: {r.status_code} {r.text}")
            written += len(lines)
            lines.clear()

    step_ms = int(interval_s * 1000)
    per_message = 12
    t = start_ms + (per_message - 1) * step_ms
    while t < end_ms:
        for msg in fleet.messages(t, interval_s, per_message):
            lines.extend(message_lines(msg))
        flush()
        t += per_message * step_ms
    day_ms = 86_400_000
    span_days = (end_ms - start_ms) / day_ms
    for d in fleet.devices:
        if d.kind == "wearable":
            for _ in range(sum(rng.random() < alerts_per_day for _ in range(int(span_days) + 1))):
                at = rng.randrange(start_ms, end_ms)
                tags = {"device_id": d.device_id, "site": d.site, "type": rng.choice(ALERT_TYPES)}
                lines.append(
                    line(CARE_ALERT, tags, {"state": "open", "value": 1.0, "episode_ms": at}, at)
                )
        elif d.kind == "bus":
            route = getattr(d, "route", None)
            route_id = str(getattr(route, "route_id", None) or getattr(d, "route_id", "R1"))
            at = start_ms + rng.randrange(0, 1_200_000)
            while at < end_ms:
                stop = f"S{rng.randrange(8)}"
                delay = max(-120.0, rng.gauss(60, 120))
                fields: dict[str, float | int | str] = {
                    "delay_s": round(delay, 1),
                    "trip_id": f"{route_id}-{at // 3_600_000}",
                    "scheduled_ms": at - int(delay * 1000),
                    "headway_s": float(rng.randrange(600, 1500)),
                }
                tags = {
                    "device_id": d.device_id,
                    "route_id": route_id,
                    "site": d.site,
                    "stop_id": stop,
                }
                lines.append(line(BUS_ARRIVAL, tags, fields, at))
                at += rng.randrange(300_000, 900_000)
        flush()
    flush(force=True)
    return written
