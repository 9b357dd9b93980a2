"""The slot boundaries inside a green window: their counter corrections, stored or live.

For every 30-minute boundary b strictly inside the window's intervals, the energy from
each meter's last reading up to b (``api.boundaries``) is added to the slot ending at b
and taken off the slot starting at b. Boundaries the writer stored (a marker in
``machi_rollup.energy_boundary_mark``) come from one small statement for the whole
window (per 30-minute bucket: the sums of ``energy_boundary_site`` and the markers);
the others, the newest ones the writer has not reached yet or all of them when nothing
is stored, are computed live from raw points, at most :data:`CAP` per answer; beyond
it they are not interpolated and the answer says how to store them.
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from api import boundaries, interp
from api.boundaries import MARK, SITE, SLOT_MS, Boundary
from contract.influx import quote_ident, quote_str
from contract.rules import ROLLUP_RP

#: Live boundaries per answer (two statements each).
CAP = 4


@dataclass
class Corrections:
    """Per boundary b (ms): the import and export delta of the window's meters."""

    imp: dict[int, float] = field(default_factory=dict)
    exp: dict[int, float] = field(default_factory=dict)
    gaps: int = 0  # (meter, boundary) of the import counter not interpolated: a gap
    live: dict[int, Boundary] = field(default_factory=dict)  # per meter, the live ones
    stored: set[int] = field(default_factory=set)
    missing: list[int] = field(default_factory=list)  # over the cap: not interpolated

    def add_live(self, b: Boundary) -> None:
        self.live[b.b_ms] = b
        self.imp[b.b_ms] = float(sum(m.imp or 0.0 for m in b.meters.values()))
        self.exp[b.b_ms] = float(sum(m.exp or 0.0 for m in b.meters.values()))
        self.gaps += b.gaps

    def apply(self, imp: dict[int, float], exp: dict[int, float]) -> None:
        """Move each boundary's delta from the slot starting at b to the one ending at b."""
        for deltas, slots in ((self.imp, imp), (self.exp, exp)):
            shift(slots, deltas)


def shift(slots: dict[Any, float], deltas: dict[Any, float]) -> None:
    """``deltas`` keyed by b (or (meter, b)): add each to b's slot before, take it off b's."""
    for key, d in deltas.items():
        if not d:
            continue
        before = (key[0], key[1] - SLOT_MS) if isinstance(key, tuple) else key - SLOT_MS
        slots[before] = slots.get(before, 0.0) + d
        slots[key] = slots.get(key, 0.0) - d


@dataclass(frozen=True)
class InnerPlan:
    """Which inner boundaries of a window come from storage and which are computed live."""

    db: str
    site: str | None
    bounds: tuple[int, ...]  # every inner boundary, oldest first
    stored: bool  # the rollup policy exists: read the stored boundaries
    now_ms: int

    @classmethod
    def make(
        cls, db: str, site: str | None, lo: datetime, hi: datetime, stored: bool, now: datetime
    ) -> InnerPlan:
        """The boundaries strictly inside ``(lo, hi)``: the window's first interval's start
        and its end (those two are interpolated by ``api.green.interpolate``)."""
        lo_ms, hi_ms = _ms(lo), _ms(hi)
        return cls(db, site, tuple(boundaries.grid(lo_ms + 1, hi_ms - 1)), stored, _ms(now))

    @property
    def live_first(self) -> tuple[int, ...]:
        """Boundaries computed live in the first request: with nothing stored, the newest
        up to the cap; otherwise none (the unmarked ones go in a second request: the
        writer stores a boundary a minute or a round after it passes)."""
        return () if self.stored else self.bounds[-CAP:]

    def _filter(self) -> str:
        return "" if self.site is None else f" AND {quote_ident('site')} = {quote_str(self.site)}"

    def _rp(self, measurement: str) -> str:
        return f"{quote_ident(self.db)}.{quote_ident(ROLLUP_RP)}.{measurement}"

    def _range(self) -> str:
        return f"time >= {self.bounds[0]}ms AND time <= {self.bounds[-1]}ms"

    def statements(self) -> list[str]:
        """The stored sums and markers (one statement), then the first live boundaries."""
        if not self.bounds:
            return []
        out = []
        if self.stored:
            # The marker has no site tag: `site = ''` matches it under a site filter.
            site = (
                ""
                if self.site is None
                else f" AND ({quote_ident('site')} = {quote_str(self.site)} "
                f"OR {quote_ident('site')} = '')"
            )
            out.append(
                "SELECT SUM(imp_delta) AS i, SUM(exp_delta) AS e, SUM(gaps) AS g, "
                f"COUNT(meters) AS n FROM {self._rp(SITE)}, {self._rp(MARK)} "
                f"WHERE {self._range()}{site} GROUP BY time(30m) fill(none)"
            )
        return out + self.live_statements(self.live_first)

    def live_statements(self, bs: tuple[int, ...] | list[int]) -> list[str]:
        return boundaries.statements(self.db, bs, self._filter(), by="device_id")

    def read(self, res: list[list[dict[str, Any]]]) -> tuple[Corrections, list[int]]:
        """The corrections from :meth:`statements`' answers, and the boundaries still
        unknown (neither stored nor live yet), oldest first."""
        c = Corrections()
        if not self.bounds:
            return c, []
        if self.stored:
            sums: dict[int, tuple[float, float, int]] = {}
            for s in res[0]:
                for row in s.get("values", []):
                    if s.get("name") == MARK:
                        c.stored.add(int(row[0]))
                    else:
                        sums[int(row[0])] = (row[1] or 0.0, row[2] or 0.0, int(row[3] or 0))
            for b in c.stored:
                i, e, g = sums.get(b, (0.0, 0.0, 0))
                c.imp[b], c.exp[b] = float(i), float(e)
                c.gaps += g
            res = res[1:]
        self.add_live(c, self.live_first, res)
        unknown = [b for b in self.bounds if b not in c.stored and b not in c.live]
        return c, unknown

    def add_live(self, c: Corrections, bs: tuple[int, ...] | list[int], res: list[Any]) -> None:
        """Add the live boundaries ``bs`` from their :meth:`live_statements` answers (a
        stored boundary wins over a live one)."""
        for j, b in enumerate(bs):
            if b not in c.stored:
                complete = b + interp.GAP_MS <= self.now_ms
                c.add_live(boundaries.boundary(b, res[2 * j], res[2 * j + 1], complete))

    def meter_statement(self, devices: list[str]) -> str:
        """The stored per-meter import deltas of ``devices`` (meters with fixed-time values)."""
        f = " OR ".join(f"{quote_ident('device_id')} = {quote_str(d)}" for d in devices)
        return (
            f"SELECT imp_delta FROM {self._rp(boundaries.METER)} "
            f"WHERE {self._range()}{self._filter()} AND ({f}) GROUP BY device_id"
        )


def meter_deltas(
    c: Corrections, devices: set[str], stored: list[dict[str, Any]]
) -> dict[tuple[str, int], float]:
    """(meter, b) -> import delta of ``devices``: live ones, and the stored answer of
    :meth:`InnerPlan.meter_statement` for the stored boundaries."""
    out: dict[tuple[str, int], float] = {}
    for b, bound in c.live.items():
        for dev in devices & bound.meters.keys():
            out[(dev, b)] = bound.meters[dev].imp or 0.0
    for s in stored:
        dev = s.get("tags", {}).get("device_id", "")
        for row in s.get("values", []):
            if int(row[0]) in c.stored and row[1] is not None:
                out[(dev, int(row[0]))] = float(row[1])
    return out


def _ms(t: datetime) -> int:
    return int(t.astimezone(UTC).timestamp() * 1000)
