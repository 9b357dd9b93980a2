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

from api.rollups import GRID, LATE, RP, increase, ts
from contract.influx import quote_ident, quote_str

SLOT = "30m"  # Japan's demand period (デマンド時限)


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
        steps = (
            f"SELECT {increase('xi')} AS ci, {increase('xe')} AS ce "
            f"FROM ({bridge}), ({fresh}) WHERE {self._between(reach, stop)} "
            f"GROUP BY time({int(GRID.total_seconds())}s, 1ms), device_id"
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
        out.append(self._tail(f))
        out.append(self._reporting(f))
        return out

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
        i = 0
        if self.uses_rollup:
            _add(imp, res[0], 1)
            _add(exp, res[0], 2)
            i = 1
        _add(imp, res[i], 1)
        _add(exp, res[i], 2)
        return imp, exp


def _add(into: dict[int, float], series: list[dict[str, Any]], column: int) -> None:
    for s in series:
        for row in s.get("values", []):
            if row[column] is not None:
                into[row[0]] = into.get(row[0], 0.0) + float(row[column])
