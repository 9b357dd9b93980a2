"""The public aggregates: daily and weekly figures per theme and district, precomputed.

Every figure comes from the API's own KPI code path (a ``compute(theme, start, end,
site)`` callable the API hands over: ``KpiEngine.theme``), over whole local days and
whole Monday-to-Monday weeks in Asia/Tokyo. The page, the CSV/JSON files and
``/v1/kpis/{theme}?start=..&end=..`` for the same period therefore give the same number.

Care figures are the API's public answers: ``contract.disclosure`` (k, the group rule,
complementary suppression across districts and alert types, small counts, the fixed
public grid) has already been applied by the ``compute`` the API hands over, with the
public k raised to at least ``contract.rules.CARE_K_DEFAULT`` for this page. The portal
adds one rule of its own: care figures of a period that is not over yet are not
published (a growing "today" could be differenced between snapshots). A period off the
public grid (a week, under the default daily grid) comes back fully suppressed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from contract.periodic import Periodic
from portal.strings import THEMES_PUBLIC, theme_kpis

__all__ = [
    "TZ",
    "Builder",
    "Cell",
    "Compute",
    "Period",
    "Refresher",
    "Snapshot",
    "day_periods",
    "week_periods",
]

log = logging.getLogger("machi.portal")

TZ = ZoneInfo("Asia/Tokyo")

#: ``compute(theme, start, end, site)`` -> the API's theme answer (``ThemeResult.as_dict``).
Compute = Callable[[str, datetime, datetime, str | None], dict[str, Any]]

#: A period's figures count as final this long after it ends; final figures are reused
#: between rounds for ``recheck`` (late data, e.g. an edge outbox draining after an
#: outage, shows up within that) and then computed again.
SETTLE = timedelta(hours=1)


@dataclass(frozen=True)
class Period:
    """A whole local day or week: ``[start, end)`` in UTC, labelled by its local date."""

    kind: Literal["day", "week"]
    first: date  # local date of the first day
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return self.first.isoformat()

    def complete(self, now: datetime) -> bool:
        return now >= self.end


def _local_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=TZ).astimezone(UTC)


def day_periods(now: datetime, days: int) -> list[Period]:
    """The last ``days`` local days, today included, oldest first."""
    today = now.astimezone(TZ).date()
    out = []
    for i in range(days - 1, -1, -1):
        d = today - timedelta(days=i)
        out.append(Period("day", d, _local_midnight(d), _local_midnight(d + timedelta(days=1))))
    return out


def week_periods(now: datetime, weeks: int) -> list[Period]:
    """The last ``weeks`` local Monday-to-Monday weeks, this week included, oldest first."""
    today = now.astimezone(TZ).date()
    monday = today - timedelta(days=today.weekday())
    out = []
    for i in range(weeks - 1, -1, -1):
        d = monday - timedelta(weeks=i)
        out.append(Period("week", d, _local_midnight(d), _local_midnight(d + timedelta(days=7))))
    return out


@dataclass
class Cell:
    """One theme's figures for one district (None = city) and period."""

    values: dict[str, float | None]
    computed_at: datetime
    suppressed: bool = False
    pending: bool = False  # care: the period is not over yet, nothing is published

    @property
    def shown(self) -> bool:
        return not (self.suppressed or self.pending)

    def value(self, kpi: str) -> float | None:
        return self.values.get(kpi) if self.shown else None


CellKey = tuple[str, str, str, str | None]  # theme, kind, label, site


@dataclass(frozen=True)
class Snapshot:
    """One round of public aggregates; readers see a whole round or the previous one."""

    made_at: datetime
    sites: list[str]
    days: list[Period]
    weeks: list[Period]
    cells: dict[CellKey, Cell] = field(default_factory=dict)

    def cell(self, theme: str, period: Period, site: str | None) -> Cell | None:
        return self.cells.get((theme, period.kind, period.label, site))

    def periods(self, kind: str) -> list[Period]:
        return self.days if kind == "day" else self.weeks

    def rows(
        self, theme: str, kind: str, site: str | None | Literal["all"] = "all"
    ) -> list[dict[str, Any]]:
        """The open-data rows of a theme: one per period and district (city first)."""
        out = []
        where = [None, *self.sites] if site == "all" else [site]
        for p in self.periods(kind):
            for s in where:
                c = self.cell(theme, p, s)
                if c is None:
                    continue
                row: dict[str, Any] = {
                    "period": kind,
                    "date": p.label,
                    "start": _iso(p.start),
                    "end": _iso(p.end),
                    "district": s or "",
                    "complete": p.complete(self.made_at),
                    "suppressed": c.suppressed or c.pending,
                }
                for k in theme_kpis(theme):
                    row[k.id] = c.value(k.id)
                row["computed_at"] = _iso(c.computed_at)
                out.append(row)
        return out

    @property
    def etag(self) -> str:
        """A hash of everything published: equal data, equal tag."""
        doc = {
            f"{t}|{k}|{lbl}|{s}": [c.shown, sorted(c.values.items()) if c.shown else None]
            for (t, k, lbl, s), c in sorted(self.cells.items(), key=lambda kv: str(kv[0]))
        }
        return hashlib.sha256(json.dumps(doc, default=str).encode()).hexdigest()[:32]

    def latest(
        self, theme: str, site: str | None, complete: bool = False
    ) -> tuple[Period, Cell] | None:
        """The most recent day with figures shown (today first, if it has any, unless
        ``complete`` asks for a finished day)."""
        for p in reversed(self.days):
            if complete and not p.complete(self.made_at):
                continue
            c = self.cell(theme, p, site)
            if c is not None and c.shown and any(v is not None for v in c.values.values()):
                return p, c
        return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Builder:
    """Computes snapshots through ``compute``; reuses final figures between rounds."""

    def __init__(
        self,
        compute: Compute,
        sites: Callable[[], list[str]],
        days: int,
        weeks: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recheck: timedelta = timedelta(minutes=30),
    ) -> None:
        self.compute = compute
        self.sites = sites
        self.days = days
        self.weeks = weeks
        self.clock = clock
        self.recheck = recheck
        self._final: dict[tuple[str, datetime, datetime, str | None], tuple[datetime, dict]] = {}

    def _answer(self, theme: str, p: Period, site: str | None, now: datetime) -> Cell:
        key = (theme, p.start, p.end, site)
        hit = self._final.get(key)
        if hit is not None and now - hit[0] < self.recheck:
            at, values = hit
        else:
            ans = self.compute(theme, p.start, p.end, site)
            at = now
            values = {k["id"]: k["value"] for k in ans["kpis"]}
            if now >= p.end + SETTLE:
                self._final[key] = (at, values)
        return Cell(dict(values), at)

    def build(self) -> Snapshot:
        now = self.clock()
        sites = self.sites()
        days = day_periods(now, self.days)
        weeks = week_periods(now, self.weeks)
        cells: dict[CellKey, Cell] = {}
        for theme in THEMES_PUBLIC:
            for p in days + weeks:
                for s in [None, *sites]:
                    cell = self._answer(theme, p, s, now)
                    if theme == "care":
                        # Withheld by the API's disclosure control, or not over yet.
                        cell.suppressed = cell.values.get("residents_monitored") is None
                        cell.pending = not p.complete(now)
                    cells[(theme, p.kind, p.label, s)] = cell
        live = {
            (t, p.start, p.end, s)
            for t in THEMES_PUBLIC
            for p in days + weeks
            for s in [None, *sites]
        }
        self._final = {k: v for k, v in self._final.items() if k in live}
        return Snapshot(now, sites, days, weeks, cells)


class Refresher(Periodic):
    """Rebuilds the snapshot every ``interval_s`` on a daemon thread."""

    name = "portal-refresher"
    failure_message = "public aggregates refresh failed; serving the previous snapshot"

    def __init__(self, builder: Builder, interval_s: float) -> None:
        super().__init__(interval_s, log)
        self.builder = builder
        self.snapshot: Snapshot | None = None
        self.on_update: Callable[[Snapshot], None] | None = None

    def refresh(self) -> Snapshot:
        t0 = time.monotonic()
        snap = self.builder.build()
        self.snapshot = snap  # one reference swap
        self.rounds += 1
        self.last_round_s = time.monotonic() - t0
        return snap

    def pause(self) -> float:
        # At least as long as the round took: the portal never keeps InfluxDB busy
        # more than half of the time, whatever the interval.
        pause = self.interval_s if self.snapshot is not None else min(self.interval_s, 5)
        return max(pause, self.last_round_s)
