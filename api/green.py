"""The green theme's counter statements: rollup intervals plus the raw tail.

Counters are read on the 5-minute grid (see ``api.rollups``): the energy of interval k,
``(b, b + 5 min]``, is the reset-aware step (``rollups.increase``) from the meter's
previous reading to the last reading in k.
A window ``[start, end)`` covers the intervals that *start* in it. Whole intervals up
to the rollup frontier come from ``machi_rollup.energy_site`` (a few points per site);
intervals after it (the tail, minutes) are computed from raw points by the same rule,
each meter's first tail step measured from its last reading before the tail.
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api import interp
from api.rollups import GRID, LATE, RP, increase, per_meter_increase, step_parts, ts
from contract.influx import quote_ident, quote_str
from contract.rules import DEMAND_SLOT_MS

SLOT_MS = DEMAND_SLOT_MS
SLOT = f"{SLOT_MS // 60_000}m"  # the InfluxQL duration
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class GreenPlan:
    """Which intervals come from the rollup ``[start_grid, frontier)`` and which from raw."""

    db: str
    start: datetime  # the window's start (raw readings from here count as "reporting")
    start_grid: datetime  # first interval of the window
    frontier: datetime  # first interval not read from the rollup (== start_grid: none)
    end: datetime

    @property
    def uses_rollup(self) -> bool:
        return self.frontier > self.start_grid

    def _site(self, site: str | None) -> str:
        return "" if site is None else f" AND {quote_ident('site')} = {quote_str(site)}"

    def _rp(self, measurement: str) -> str:
        return f"{quote_ident(self.db)}.{quote_ident(RP)}.{measurement}"

    def _raw(self) -> str:
        return f"{quote_ident(self.db)}..energy_meter"

    def _between(self, lo: datetime, hi: datetime) -> str:
        return f"time >= {ts(lo)} AND time < {ts(hi)}"

    def slot_range(self) -> tuple[datetime, datetime]:
        """The whole 30-minute slots inside the window's intervals: [first, last)."""
        lo_ms = -(-int(self.start_grid.timestamp() * 1000) // SLOT_MS) * SLOT_MS
        hi_ms = int(self.end.timestamp() * 1000) // SLOT_MS * SLOT_MS
        lo = datetime.fromtimestamp(lo_ms / 1000, self.start_grid.tzinfo)
        hi = datetime.fromtimestamp(max(lo_ms, hi_ms) / 1000, self.start_grid.tzinfo)
        return lo, hi

    def fixed_slots(self, site: str | None) -> str:
        """Per meter per whole slot: the increase of the meter's fixed-time readings
        (``fixed_import_kwh`` at :00/:30) from the slot's start to its end.

        Right-closed 30-minute buckets (b, b + 30 min]: the reading at b + 30 min closes
        slot b, labelled b + 1 ms; the one at b is the step's start (the bucket before).
        """
        lo, hi = self.slot_range()
        where = f"{self._between(lo - timedelta(minutes=30), hi + _MS)}{self._site(site)}"
        parts = (
            f"SELECT {step_parts('fixed_import_kwh', 'f')} FROM {self._raw()} "
            f"WHERE {where} GROUP BY time({SLOT}, 1ms), device_id"
        )
        return f"SELECT {increase('f')} AS fi FROM ({parts}) WHERE {where} GROUP BY device_id"

    def meter_slots(self, site: str | None, devices: list[str]) -> list[str]:
        """Counter-based import per slot of ``devices`` only, per meter (rollup part, raw
        tail), to be swapped for their fixed-time values."""
        f = (
            self._site(site)
            + " AND ("
            + " OR ".join(f"{quote_ident('device_id')} = {quote_str(d)}" for d in devices)
            + ")"
        )
        out = []
        if self.uses_rollup:
            out.append(
                f"SELECT SUM(imp_kwh) FROM {self._rp('energy_meter')} "
                f"WHERE {self._between(self.start_grid, self.frontier)}{f} "
                f"GROUP BY time({SLOT}), device_id fill(none)"
            )
        out.append(self._tail(f))
        return out

    def _tail(self, site: str) -> str:
        """Per 30-min slot, the tail intervals' import and export energy, from raw points."""
        t0 = self.frontier
        reach = t0 - LATE
        # The bridge: each meter's last readings in the hour before the tail, as ONE point
        # at ``reach``: a GROUP BY time of 2 h whose bucket starts exactly at ``reach``
        # (without its own interval the subquery would take the outer 5-minute one).
        span = int(2 * LATE.total_seconds())
        offset = int(reach.timestamp()) % span
        if self.uses_rollup:
            source, imp, exp = self._rp("energy_meter"), "imp_last", "exp_last"
        else:
            source, imp, exp = self._raw(), "energy_import_kwh", "energy_export_kwh"
        # Right-closed intervals: a raw reading exactly at t0 closes the interval
        # before the tail (the rollup's), so the bridge includes it and the tail not; one
        # exactly at ``end`` closes the window's last interval, so the tail includes it.
        edge = t0 + timedelta(milliseconds=1)
        stop = self.end + timedelta(milliseconds=1)
        bridge_hi = t0 if self.uses_rollup else edge
        bridge = (
            f"SELECT LAST({imp}) AS xi, LAST({exp}) AS xe FROM {source} "
            f"WHERE {self._between(reach, bridge_hi)}{site} "
            f"GROUP BY time({span}s, {offset}s), device_id"
        )
        fresh = (
            "SELECT energy_import_kwh AS xi, energy_export_kwh AS xe "
            f"FROM {self._raw()} WHERE {self._between(edge, stop)}{site}"
        )
        steps = per_meter_increase(
            f"({bridge}), ({fresh})",
            ("xi", "xe"),
            f" WHERE {self._between(reach, stop)}",
            f"time({int(GRID.total_seconds())}s, 1ms), device_id",
        )
        # InfluxDB narrows a subquery to its outer query's time range: every level must
        # reach ``stop``.
        # Per meter per slot, added up in Python (a few meters x slots of the tail):
        # InfluxDB 1.6 merges the series of a subquery whose fields are arithmetic on
        # aggregates, collapsing points of different meters that share a timestamp.
        return (
            f"SELECT SUM(ci), SUM(ce) FROM ({steps}) WHERE {self._between(reach, stop)} "
            f"GROUP BY time({SLOT}), device_id fill(none)"
        )

    def statements(self, site: str | None) -> list[str]:
        """Rollup slots (if any), raw tail slots (import and export), meters reporting."""
        f = self._site(site)
        out = []
        if self.uses_rollup:
            out.append(
                f"SELECT SUM(imp_kwh), SUM(exp_kwh) FROM {self._rp('energy_site')} "
                f"WHERE {self._between(self.start_grid, self.frontier)}{f} "
                f"GROUP BY time({SLOT}) fill(none)"
            )
            out += self._short_tail(f)
        else:
            out.append(self._tail(f))
        out.append(self._reporting(f))
        return out

    def _short_tail(self, site: str) -> list[str]:
        """The raw tail after the rollup frontier (minutes) as each meter's bridge reading
        and its per-interval LAST/MAX, combined in Python (:func:`tail_steps`) by the
        same rule as ``rollups.increase``: the InfluxQL form re-runs its subqueries once
        per function call, ~10x the cost for these few thousand numbers."""
        t0 = self.frontier
        stop = self.end + _MS
        bridge = (
            f"SELECT LAST(imp_last) AS xi, LAST(exp_last) AS xe FROM {self._rp('energy_meter')} "
            f"WHERE {self._between(t0 - LATE, t0)}{site} GROUP BY device_id"
        )
        parts = (
            "SELECT LAST(energy_import_kwh) AS li, MAX(energy_import_kwh) AS mi, "
            "LAST(energy_export_kwh) AS le, MAX(energy_export_kwh) AS me "
            f"FROM {self._raw()} WHERE {self._between(t0 + _MS, stop)}{site} "
            f"GROUP BY time({int(GRID.total_seconds())}s, 1ms), device_id fill(none)"
        )
        return [bridge, parts]

    # -- interpolation to the window's ends (api.interp) ------------------------------

    def boundaries(self) -> tuple[int, int]:
        """The window's ends, ms: its first interval's start and its end."""
        return int(self.start_grid.timestamp() * 1000), int(self.end.timestamp() * 1000)

    def edge_statements(self, site: str | None) -> list[str]:
        """Each meter's readings either side of the window's start and of its end (none
        for a window inside one interval: it covers no interval)."""
        lo, hi = self.boundaries()
        if lo >= hi:
            return []
        f = self._site(site)
        return [
            interp.side(self._raw(), b, after, f)
            for b in self.boundaries()
            for after in (False, True)
        ]

    def _reporting(self, f: str) -> str:
        """Distinct meters with a reading in ``[start, end)``: newest point per meter per part."""
        parts = []
        if self.uses_rollup:
            head = (self.start, self.start_grid)
            parts.append(
                f"SELECT LAST(n) AS x FROM {self._rp('energy_meter')} "
                f"WHERE {self._between(self.start_grid, self.frontier)}{f} GROUP BY device_id"
            )
            ranges = [head, (self.frontier, self.end)]
        else:
            ranges = [(self.start, self.end)]
        for lo, hi in ranges:
            if lo < hi:
                parts.append(
                    f"SELECT LAST(seq) AS x FROM {self._raw()} "
                    f"WHERE {self._between(lo, hi)}{f} GROUP BY device_id"
                )
        sources = ", ".join(f"({p})" for p in parts)
        return f"SELECT COUNT(l) FROM (SELECT LAST(x) AS l FROM {sources} GROUP BY device_id)"

    def slots(self, res: list[list[dict[str, Any]]]) -> tuple[dict[int, float], dict[int, float]]:
        """Import and export kWh per 30-minute slot (ms epoch), rollup and tail added up."""
        imp: dict[int, float] = {}
        exp: dict[int, float] = {}
        if self.uses_rollup:
            _add(imp, res[0], 1)
            _add(exp, res[0], 2)
            for (_dev, slot), (ki, ke) in tail_steps(res[1], res[2]).items():
                if ki is not None:
                    imp[slot] = imp.get(slot, 0.0) + ki
                if ke is not None:
                    exp[slot] = exp.get(slot, 0.0) + ke
        else:
            _add(imp, res[0], 1)
            _add(exp, res[0], 2)
        return imp, exp


def step(d: float, last: float, top: float) -> float:
    """One interval's reset-aware counter increase: ``rollups.increase`` in Python
    (the same operations in the same order, so both give the same double)."""
    return d if d >= 0 else last + max(0.0, top - last + d)


def tail_steps(
    bridge: list[dict[str, Any]], parts: list[dict[str, Any]]
) -> dict[tuple[str, int], tuple[float | None, float | None]]:
    """(device, slot ms) -> (import kWh, export kWh) of the short raw tail."""
    prev: dict[tuple[str, int], float] = {}
    for s in bridge:
        dev = s.get("tags", {}).get("device_id", "")
        for row in s.get("values", []):
            for col, value in ((1, row[1]), (2, row[2])):
                if value is not None:
                    prev[(dev, col)] = float(value)
    out: dict[tuple[str, int], list[float | None]] = {}
    for s in parts:
        dev = s.get("tags", {}).get("device_id", "")
        for row in sorted(s.get("values", []), key=lambda r: r[0]):
            slot = (row[0] - 1) // SLOT_MS * SLOT_MS  # labels are interval start + 1 ms
            for col, (last, top) in ((1, (row[1], row[2])), (2, (row[3], row[4]))):
                if last is None:
                    continue
                before = prev.get((dev, col))
                prev[(dev, col)] = float(last)
                if before is None:
                    continue  # no earlier reading within reach: no step
                kwh = step(float(last) - before, float(last), float(top))
                acc = out.setdefault((dev, slot), [None, None])
                acc[col - 1] = (acc[col - 1] or 0.0) + kwh
    return {k: (v[0], v[1]) for k, v in out.items()}


def per_meter(series: list[dict[str, Any]], shift_ms: int = 0) -> dict[tuple[str, int], float]:
    """(device_id, slot ms) -> value of a ``GROUP BY ..., device_id`` answer."""
    out: dict[tuple[str, int], float] = {}
    for s in series:
        dev = s.get("tags", {}).get("device_id", "")
        for row in s.get("values", []):
            if row[1] is not None:
                key = (dev, row[0] - shift_ms)
                out[key] = out.get(key, 0.0) + float(row[1])
    return out


def swap_fixed(
    imp: dict[int, float],
    counter: dict[tuple[str, int], float],
    fixed: dict[tuple[str, int], float],
) -> int:
    """Replace, in the import slots, each meter's counter-based slot energy by its
    fixed-time one where it has one; return how many (meter, slot) were swapped."""
    for (dev, slot), kwh in fixed.items():
        if slot in imp or (dev, slot) in counter:
            imp[slot] = imp.get(slot, 0.0) - counter.get((dev, slot), 0.0) + kwh
        else:
            imp[slot] = kwh
    return len(fixed)


def _add(into: dict[int, float], series: list[dict[str, Any]], column: int) -> None:
    for s in series:
        for row in s.get("values", []):
            if row[column] is not None:
                into[row[0]] = into.get(row[0], 0.0) + float(row[column])


def interpolate(
    plan: GreenPlan,
    imp: dict[int, float],
    exp: dict[int, float],
    results: list[list[dict[str, Any]]],
    skip: set[tuple[str, int]],
) -> int:
    """Add, per meter, the counters' interpolated part beyond the last reading before the
    window's end to the last slot and take the part before its start off the first slot
    (not for the (meter, slot)s in ``skip``, whose fixed-time values replaced them);
    return how many (meter, end) of the import counter lay in a gap over
    ``interp.GAP_MS`` (not interpolated; at the end only when a reading after it
    exists). ``results``: the answers of :meth:`GreenPlan.edge_statements`, in order."""
    gaps = 0
    if not results:
        return gaps
    for i, b in enumerate(plan.boundaries()):
        before, after = interp.readings(results[2 * i]), interp.readings(results[2 * i + 1])
        sign = 1.0 if i else -1.0  # the end adds, the start takes off
        slot = ((b - 1) if i else b) // SLOT_MS * SLOT_MS
        for dev in before.keys() | after.keys():
            for counter, slots in ((0, imp), (1, exp)):
                d = interp.delta(b, before.get(dev), after.get(dev), counter)
                if d is None:
                    # Nothing after the end yet is no gap (a window ending now).
                    gaps += counter == 0 and (i == 0 or dev in after)
                elif d and (counter or (dev, slot) not in skip):
                    slots[slot] = slots.get(slot, 0.0) + sign * d
    return gaps
