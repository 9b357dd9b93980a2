"""Counters interpolated to a boundary: each meter's readings either side of it.

The step rule of ``api.rollups`` counts a meter's energy up to its last reading at or
before a boundary b. Interpolating the counter linearly between that reading (t_a, c_a)
and the first one after b (t_z, c_z) adds delta(b) = inc * (b - t_a) / (t_z - t_a),
inc the pair's reset-aware increase; the API adds it at the window's end and takes it
off at the window's start (docs/kpis.md "Green").

InfluxDB 1.6 gives a bucket's start, not a sample's time, for FIRST/LAST under GROUP BY
time(); without GROUP BY time() a selector returns the sample's own time (and the other
fields of that sample). So each boundary costs two small statements: the last reading
in (b - GAP, b] and the first in (b, b + GAP], per meter.
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: No interpolation across a longer gap between two readings: the step across it stays
#: with the reading after it (as the step rule counts it).
GAP_MS = 15 * 60 * 1000


def side(source: str, b_ms: int, after: bool, site: str, by: str = "device_id") -> str:
    """Per meter: the last reading at or before ``b_ms`` (or the first after it) within
    :data:`GAP_MS`, at its own time, with the export counter of the same reading
    (``by``: the tags to group by, the meter's id first)."""
    if after:
        fn, lo, hi = "FIRST", b_ms, b_ms + GAP_MS
    else:
        fn, lo, hi = "LAST", b_ms - GAP_MS, b_ms
    return (
        f"SELECT {fn}(energy_import_kwh) AS c, energy_export_kwh AS ce FROM {source} "
        f"WHERE time > {lo}ms AND time <= {hi}ms{site} GROUP BY {by}"
    )


@dataclass(frozen=True)
class Reading:
    t_ms: int
    values: tuple[float | None, float | None]  # import, export


def readings(series: list[dict[str, Any]]) -> dict[str, Reading]:
    """device_id -> its reading from a :func:`side` answer."""
    out = {}
    for s in series:
        for row in s.get("values", []):
            values = (_num(row[1]), _num(row[2]))
            out[s.get("tags", {}).get("device_id", "")] = Reading(int(row[0]), values)
    return out


def delta(b_ms: int, a: Reading | None, z: Reading | None, counter: int) -> float | None:
    """The interpolated energy from the last reading at or before ``b_ms`` up to it;
    None when the two readings are more than :data:`GAP_MS` apart or one side has no
    reading within it (a gap, a meter not yet or no longer reporting, or no data yet
    after a window ending now): not interpolated, the step rule's answer."""
    if a is None and z is None:
        return 0.0
    if a is None or z is None:
        return None
    ca, cz = a.values[counter], z.values[counter]
    if ca is None or cz is None:
        return 0.0
    span = z.t_ms - a.t_ms
    if span > GAP_MS:
        return None
    inc = cz - ca if cz >= ca else cz  # a reset: the new counter's reading is its increase
    return inc * (b_ms - a.t_ms) / span


def _num(v: Any) -> float | None:
    return None if v is None else float(v)
