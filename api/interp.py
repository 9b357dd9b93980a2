"""Counters interpolated to boundaries: each meter's first reading after a boundary.

A slot's energy is C(hi) - C(lo) with C the meter's counter linearly interpolated between
the last reading at or before a boundary b and the first reading after it. The step rule
of ``api.rollups`` counts up to the last reading at or before b; the interpolated part
beyond it, delta(b) = inc * (b - t_a) / (t_z - t_a) (inc the pair's reset-aware
increase), is added at a slot's end and taken off at its start (docs/kpis.md "Green").

InfluxDB 1.6 gives a bucket's start, not a sample's time, for FIRST/LAST under GROUP BY
time(); BOTTOM keeps the sample's own time. So per meter and bucket ``(b, b + every]``
the statement picks the first reading z by BOTTOM of the counter's running sum ``s``
(non-decreasing for a non-negative counter: the earliest reading is the smallest), with
z's ELAPSED (t_z - t_a), DIFFERENCE (c_z - c_a) and 2-point MOVING_AVERAGE ((c_a + c_z)/2,
so c_z) as fields of the same row.
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: No interpolation across a longer gap between two readings: the step across it stays
#: with the reading after it (as the step rule counts it).
GAP_MS = 15 * 60 * 1000
#: Edge fields per counter: (elapsed, difference, moving average).
FIELDS = {"energy_import_kwh": ("ei", "di", "mi"), "energy_export_kwh": ("ee", "de", "me")}
COLUMNS = ("s", "ei", "di", "mi", "ee", "de", "me")


def inner(source: str, where: str, by: str) -> str:
    """Per reading: the running sum ``s`` of the import counter and, per counter, the
    reading's ELAPSED, DIFFERENCE and MOVING_AVERAGE (one row per reading time)."""
    parts = ["CUMULATIVE_SUM(energy_import_kwh) AS s"]
    for field, (e, d, m) in FIELDS.items():
        parts += [
            f"ELAPSED({field}, 1ms) AS {e}",
            f"DIFFERENCE({field}) AS {d}",
            f"MOVING_AVERAGE({field}, 2) AS {m}",
        ]
    return f"SELECT {', '.join(parts)} FROM {source}{where} GROUP BY {by}"


def select(source: str, where: str, every: str, offset: str, tags: str) -> str:
    """Per meter and bucket ``[b + offset, b + offset + every)``: the first reading's row
    (sample time kept), for the bucket's start boundary."""
    return (
        f"SELECT BOTTOM(s, 1) AS s, {', '.join(COLUMNS[1:])} "
        f"FROM ({inner(source, where, tags)}){where} GROUP BY time({every}, {offset}), {tags}"
    )


def select_into(target: str) -> str:
    """The head of the rollup CQ that keeps :func:`select`'s rows (at their own times)."""
    return f"SELECT BOTTOM(s, 1) AS s, {', '.join(COLUMNS[1:])} INTO {target}"


@dataclass(frozen=True)
class Edge:
    """A meter's first reading after a boundary: its time and, per counter, the pair
    from the reading before it (span ms, difference, moving average)."""

    t_ms: int
    pairs: tuple[tuple[float | None, float | None, float | None], ...]

    def delta(self, b_ms: int, counter: int) -> float:
        """The interpolated energy from the last reading at or before ``b_ms`` up to it."""
        span, d, m = self.pairs[counter]
        if span is None or d is None or m is None or span <= 0 or span > GAP_MS:
            return 0.0
        t_a = self.t_ms - span
        if not t_a <= b_ms < self.t_ms:
            return 0.0
        c_z = m + d / 2
        inc = d if d >= 0 else c_z  # a reset: the new counter's reading is its increase
        return inc * (b_ms - t_a) / span


def edges(
    series: list[dict[str, Any]], every_ms: int, offset_ms: int
) -> dict[tuple[str, int], Edge]:
    """(device_id, boundary ms) -> the earliest edge row in the bucket after it.

    Rows of a rollup can hold a stale later row (late data moved the first reading
    earlier); the earliest is the current one."""
    out: dict[tuple[str, int], Edge] = {}
    for s in series:
        dev = s.get("tags", {}).get("device_id", "")
        cols = s["columns"]
        idx = {c: cols.index(c) for c in COLUMNS[1:] if c in cols}
        for row in s.get("values", []):
            t = int(row[0])
            b = (t - offset_ms) // every_ms * every_ms + offset_ms - 1  # bucket start - 1 ms
            key = (dev, b)
            if key in out and out[key].t_ms <= t:
                continue
            pairs = tuple(
                (_num(row, idx.get(e)), _num(row, idx.get(d)), _num(row, idx.get(m)))
                for e, d, m in FIELDS.values()
            )
            out[key] = Edge(t, pairs)
    return out


def _num(row: list[Any], i: int | None) -> float | None:
    return None if i is None or row[i] is None else float(row[i])
