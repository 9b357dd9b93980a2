"""Theme KPIs computed by InfluxQL inside InfluxDB.

Every KPI is aggregated by InfluxDB; Python only sees a handful of numbers per theme
(one HTTP round trip per theme: the statements are sent together). The definitions,
queries and edge cases are documented in docs/kpis.md; keep the two in step.
"""

# ruff: noqa: S608 -- every query here is built from constants, datetimes we format
# ourselves and ids that passed contract.ids and quote_str; see Window.where().
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from api import interp, rollups
from api.cache import TtlCache
from api.config import KpiConfig
from api.dp import DpRelease
from api.green import SLOT_MS, GreenPlan, interpolate, per_meter, swap_fixed
from api.inner import CAP, Corrections, InnerPlan, meter_deltas, shift
from contract.disclosure import CITY, COLUMNS, RESIDENTS, TOTAL, CareTable, Policy, protect
from contract.events import ALERT_STATE, ALERT_TYPES, BUS_ARRIVAL, CARE_ALERT, INGEST_STATS
from contract.ids import check_id
from contract.influx import InfluxError, InfluxV1, quote_ident, quote_str
from contract.rules import THEMES


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` and an optional site filter."""

    start: datetime
    end: datetime
    site: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must carry a time zone (RFC 3339, e.g. ...Z)")
        if self.start >= self.end:
            raise ValueError(f"start {self.start.isoformat()} must be before end")
        if self.site is not None:
            check_id(self.site, "site")

    def time_clause(self, start: datetime | None = None) -> str:
        return f"time >= {_ts(start or self.start)} AND time < {_ts(self.end)}"

    def where(self, start: datetime | None = None, with_site: bool = True) -> str:
        clause = self.time_clause(start)
        if with_site and self.site is not None:
            clause += f" AND {quote_ident('site')} = {quote_str(self.site)}"
        return clause


def _ts(t: datetime) -> str:
    # An RFC 3339 literal we format ourselves from a datetime: nothing user-typed.
    return "'" + t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z'"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Kpi:
    id: str
    value: float | None
    unit: str
    start: str
    end: str
    definition: str
    suppressed: bool = False
    note: str | None = None
    range: list[int] | None = None  # [lo, hi] of a small count published as a range

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.suppressed:
            d.pop("suppressed")
        for optional in ("note", "range"):
            if d[optional] is None:
                d.pop(optional)
        return d


@dataclass
class ThemeResult:
    theme: str
    start: str
    end: str
    site: str | None
    kpis: list[Kpi]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "theme": self.theme,
            "start": self.start,
            "end": self.end,
            "site": self.site,
            "kpis": [k.as_dict() for k in self.kpis],
            "notes": self.notes,
        }


def _count_devices(measurements: str, where: str) -> str:
    """Distinct devices with at least one point: counted inside InfluxDB."""
    return (
        f"SELECT COUNT(last) FROM (SELECT LAST(seq) FROM {measurements} "
        f"WHERE {where} GROUP BY device_id)"
    )


def _known_devices(measurement: str, site: str | None) -> str:
    q = f'SHOW TAG VALUES EXACT CARDINALITY FROM {measurement} WITH KEY = "device_id"'
    if site is not None:
        q += f" WHERE {quote_ident('site')} = {quote_str(site)}"
    return q


def _counter_sum(field_name: str, measurement: str, where: str, by: str = "device_id") -> str:
    """Sum of the non-negative steps of a cumulative counter, per series then total."""
    return (
        f"SELECT SUM(d) FROM (SELECT NON_NEGATIVE_DIFFERENCE({field_name}) AS d "
        f"FROM {measurement} WHERE {where} GROUP BY {by})"
    )


@dataclass
class GreenSlots:
    """The green theme's figures before they become KPIs (``KpiEngine.green_slots``)."""

    imp: dict[int, float]  # slot start (ms) -> grid import kWh
    exp: dict[int, float]  # slot start (ms) -> export kWh
    reporting: float
    known: float
    notes: list[str]


class KpiEngine:
    """Builds each theme's InfluxQL, runs it in one request and shapes the answer."""

    def __init__(
        self,
        influx: InfluxV1,
        config: KpiConfig | None = None,
        use_rollups: bool = True,
        policy: Policy | None = None,
        care_table_ttl_s: float = 10.0,
    ) -> None:
        self.influx = influx
        self.config = config or KpiConfig()
        k = self.config.care_k
        self.policy = policy or Policy(k_public=k, k_care=k)
        # One table serves the city and every site of a window (the refresher asks for all).
        self._care_tables = TtlCache(care_table_ttl_s, max_entries=64)
        self.use_rollups = use_rollups
        #: Differentially private public care counts (api.dp), when configured.
        self.dp: DpRelease | None = None
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests move it
        self.last_query = ""
        self._rollup_start: tuple[float, datetime | None] = (0.0, None)
        self._rollup_installed = False
        self._themes: dict[str, Callable[[Window], ThemeResult]] = {
            "green": self.green,
            "care": self.care,
            "transit": self.transit,
            "platform": self.platform,
        }

    def theme(
        self, name: str, window: Window, public: bool = True, policy: Policy | None = None
    ) -> ThemeResult:
        """One theme's KPIs; ``public`` False gives care figures at the care scope's k;
        ``policy`` replaces the engine's disclosure policy for care (the residents' page)."""
        if name not in self._themes:
            raise ValueError(f"theme {name!r} is not one of {', '.join(THEMES)}")
        if name == "care":
            return self.care(window, public, policy)
        return self._themes[name](window)

    # -- rollups --------------------------------------------------------------------

    def rollup_start(self) -> datetime | None:
        """The first interval the green rollup holds, or None (no CQs / nothing rolled yet).

        Checked at most once a minute; the answer only moves earlier (back-fills).
        """
        checked, start = self._rollup_start
        now = time.monotonic()
        if not self.use_rollups or now - checked < 60:
            return start
        start = None
        self._rollup_installed = rollups.installed(self.influx)
        if self._rollup_installed:
            try:
                series = self.influx.query(
                    f"SELECT FIRST(n) FROM {quote_ident(self.influx.db)}."
                    f"{quote_ident(rollups.RP)}.energy_meter"
                )
            except InfluxError:
                series = []  # the retention policy may not exist yet
            for s in series:
                for row in s.get("values", []):
                    start = datetime.fromtimestamp(row[0] / 1000, UTC)
        self._rollup_start = (now, start)
        return start

    def boundaries_stored(self) -> bool:
        """True when the rollup policy exists, so stored slot boundaries can be read."""
        self.rollup_start()
        return self.use_rollups and self._rollup_installed

    def green_plan(self, w: Window) -> GreenPlan:
        """Read whole intervals from the rollup up to its frontier, the rest from raw."""
        start_grid = rollups.ceil_grid(w.start)
        frontier = start_grid
        covered = self.rollup_start()
        if covered is not None and covered <= start_grid:
            ready = rollups.floor_grid(self.clock() - rollups.LAG)
            frontier = max(start_grid, min(ready, rollups.floor_grid(w.end)))
        return GreenPlan(self.influx.db, w.start, start_grid, frontier, w.end)

    # -- query plumbing -------------------------------------------------------------

    def run(self, statements: list[str]) -> list[list[dict[str, Any]]]:
        """Run several statements in one request; return each statement's series."""
        self.last_query = ";\n".join(statements)  # kept for benchmarks and debugging
        return self.influx.query_many(statements)

    @staticmethod
    def scalar(series: list[dict[str, Any]], column: int = 1) -> float | None:
        """The single value of a one-row answer, summed over series (None if empty)."""
        values = [
            row[column]
            for s in series
            for row in s.get("values", [])
            if len(row) > column and row[column] is not None
        ]
        return float(sum(values)) if values else None

    def _kpi(self, w: Window, kid: str, value: float | None, unit: str, definition: str) -> Kpi:
        return Kpi(kid, value, unit, iso(w.start), iso(w.end), definition)

    # -- themes ---------------------------------------------------------------------

    def green_slots(self, w: Window) -> GreenSlots:
        """Import and export kWh per 30-minute slot of the window, meters reporting and
        known, and the notes on what was not interpolated."""
        plan = self.green_plan(w)
        edges = plan.edge_statements(w.site)
        stored = self.boundaries_stored()
        inner = InnerPlan.make(self.influx.db, w.site, plan.start_grid, w.end, stored, self.clock())
        inner_stmts = inner.statements()
        res = self.run(
            [
                *plan.statements(w.site),
                _known_devices("energy_meter", w.site),
                plan.fixed_slots(w.site),
                *edges,
                *inner_stmts,
            ]
        )
        inner_res = res[len(res) - len(inner_stmts) :]
        del res[len(res) - len(inner_stmts) :]
        edge_res = res[len(res) - len(edges) :]
        del res[len(res) - len(edges) :]
        fixed_res = res.pop()
        imp_slots, exp_slots = plan.slots(res)
        corr = self._inner(inner, inner_res)
        corr.apply(imp_slots, exp_slots)
        # Meters with fixed-time half-hour readings (B-route): their whole slots come
        # from those billing-grade values instead of the counter samples.
        lo, hi = (int(t.timestamp() * 1000) for t in plan.slot_range())
        fixed = {k: v for k, v in per_meter(fixed_res, shift_ms=1).items() if lo <= k[1] < hi}
        if fixed:
            devices = sorted({d for d, _ in fixed})
            counter: dict[tuple[str, int], float] = {}
            extra = [inner.meter_statement(devices)] if corr.stored else []
            answers = self.run([*plan.meter_slots(w.site, devices), *extra])
            stored_deltas = answers.pop() if extra else []
            for series in answers:
                for key, kwh in per_meter(series).items():
                    counter[key] = counter.get(key, 0.0) + kwh
            # The swapped-out counter energy includes the meter's own boundary corrections.
            shift(counter, meter_deltas(corr, set(devices), stored_deltas))
            swap_fixed(imp_slots, counter, fixed)
        # Counters interpolated to the window's ends (not in the swapped slots).
        gaps = interpolate(plan, imp_slots, exp_slots, edge_res, set(fixed))
        notes = _green_notes(gaps, corr, stored)
        reporting = self.scalar(res[-2]) or 0.0
        known = self.scalar(res[-1], column=0) or 0.0
        return GreenSlots(imp_slots, exp_slots, reporting, known, notes)

    def green(self, w: Window) -> ThemeResult:
        g = self.green_slots(w)
        imp_slots, exp_slots, reporting, known, notes = g.imp, g.exp, g.reporting, g.known, g.notes
        consumption = _total(imp_slots)
        peak_kwh = max(imp_slots.values()) if imp_slots else None
        factor = self.config.emission_factor_t_per_kwh
        return ThemeResult(
            "green",
            iso(w.start),
            iso(w.end),
            w.site,
            [
                self._kpi(
                    w,
                    "energy_consumption_kwh",
                    consumption,
                    "kWh",
                    "Grid import: sum over meters of the reset-aware counter increase, the"
                    " counters interpolated to the window's ends",
                ),
                self._kpi(
                    w,
                    "peak_demand_kw",
                    None if peak_kwh is None else peak_kwh / 0.5,
                    "kW",
                    "Largest 30-minute demand: energy imported in the 30-minute slot / 0.5 h"
                    " (a meter's fixed-time half-hour values where it sends them)",
                ),
                self._kpi(
                    w,
                    "co2_emissions_t",
                    None if consumption is None else consumption * factor,
                    "t-CO2",
                    f"energy_consumption_kwh x grid emission factor {factor} t-CO2/kWh",
                ),
                self._kpi(
                    w,
                    "pv_export_kwh",
                    _total(exp_slots),
                    "kWh",
                    "Export to the grid: as energy_consumption_kwh on energy_export_kwh",
                ),
                self._kpi(
                    w,
                    "meters_reporting_pct",
                    _pct(reporting, known),
                    "%",
                    "Meters with at least one reading in the window / meters known to the database",
                ),
            ],
            notes,
        )

    def _inner(self, inner: InnerPlan, res: list[list[dict[str, Any]]]) -> Corrections:
        """The inner boundaries' corrections: stored, live in the first request, then the
        remaining unknown ones live (newest first) while under the cap."""
        corr, unknown = inner.read(res)
        room = max(0, CAP - len(inner.live_first))
        late = unknown[-room:] if room else []
        if late:
            inner.add_live(corr, late, self.run(inner.live_statements(late)))
        corr.missing = [b for b in unknown if b not in corr.live]
        return corr

    # -- care: every figure through contract.disclosure ------------------------------

    def care_table(
        self, w: Window, extra: list[str] | None = None
    ) -> tuple[CareTable, list[list[dict[str, Any]]]]:
        """True care figures of every site and the city for ``w`` (its site is ignored):
        disclosure control needs the whole table to know what a figure would reveal.
        ``extra`` statements go in the same request; their series are returned."""
        extra = extra or []
        key = (w.start, w.end)
        hit = self._care_tables.get(key)
        if hit is not None:
            return cast(CareTable, hit), self.run(extra) if extra else []
        tw = w.time_clause()
        res = self.run(
            [
                "SELECT COUNT(last) FROM (SELECT LAST(seq) FROM wearable "
                f"WHERE {tw} GROUP BY device_id, site) GROUP BY site",
                _count_devices("wearable", tw),
                f"SELECT COUNT(episode_ms) FROM {CARE_ALERT} WHERE {tw} AND state = 'open' "
                'GROUP BY site, "type"',
                *extra,
            ]
        )
        residents = {CITY: int(self.scalar(res[1]) or 0)}
        for sr in res[0]:
            site = sr.get("tags", {}).get("site")
            if site:
                residents[site] = int(self.scalar([sr]) or 0)
        alerts: dict[tuple[str, str], int] = {}
        for sr in res[2]:
            tags = sr.get("tags", {})
            if tags.get("site") and tags.get("type") in ALERT_TYPES:
                alerts[(tags["site"], tags["type"])] = int(self.scalar([sr]) or 0)
        table = CareTable(residents, alerts)
        self._care_tables.get_or_compute(key, lambda: table)
        return table, res[3:]

    def care(self, w: Window, public: bool = True, policy: Policy | None = None) -> ThemeResult:
        """Care KPIs of one row (``w.site`` or the city) after disclosure control.

        ``public`` callers get k_public, small counts as ranges and only grid windows
        (another window is answered fully suppressed; the routes answer 422 instead).
        """
        policy = policy or self.policy
        if public and self.dp is not None and policy.on_grid(w.start, w.end):
            return self._care_private(w, self.dp)
        row = w.site or CITY
        known = 0.0
        if public and not policy.on_grid(w.start, w.end):
            prot = None
        else:
            table, res = self.care_table(w, [_known_devices("wearable", w.site)])
            prot = protect(table, policy.k(public), policy.small_count if public else None)
            known = self.scalar(res[0], column=0) or 0.0
        kpis: list[Kpi] = []
        for col in COLUMNS:
            kpi = self._kpi(w, CARE_KPI_ID[col], None, *_CARE_META[col])
            if prot is None:
                kpi.suppressed, kpi.note = True, "suppressed: not a public care window"
            else:
                value = prot.value((row, col))
                kpi.value = None if value is None else float(value)
                if (row, col) in prot.ranges:
                    kpi.range = list(prot.ranges[(row, col)])
                    kpi.note = prot.reasons[(row, col)]
                elif (row, col) in prot.hidden:
                    kpi.suppressed, kpi.note = True, prot.reasons[(row, col)]
                elif value is None:  # a site with no resident in the window: 0 < k
                    kpi.suppressed = True
                    kpi.note = f"suppressed: fewer than k={policy.k(public)} residents"
            kpis.append(kpi)
        residents = kpis[0]
        pct = self._kpi(
            w,
            "wearables_reporting_pct",
            None if residents.value is None else _pct(residents.value, known),
            "%",
            "Wearables with a reading in the window / wearables known to the database",
        )
        if residents.suppressed:
            pct.suppressed, pct.note = True, residents.note
        kpis.append(pct)
        if prot is None or residents.suppressed:
            ack = self._kpi(w, "alerts_ack_p90_s", None, "s", _ACK_DEFINITION)
            ack.suppressed, ack.note = True, residents.note
        else:
            ack = self.alerts_ack_p90(w, policy.k(public))
        kpis.append(ack)
        notes = []
        if prot is None:
            notes.append(policy.grid_rule())
        else:
            k = policy.k(public)
            notes.append(
                f"care figures over fewer than k={k} residents are suppressed and not "
                "returned, and so is any figure that would let one be computed from the "
                "others (complementary suppression, see docs/kpis.md)"
            )
            if public:
                notes.append(
                    f"alert counts under {policy.small_count} are given as a range, not a value"
                )
        return ThemeResult("care", iso(w.start), iso(w.end), w.site, kpis, notes)

    def _care_private(self, w: Window, dp: DpRelease) -> ThemeResult:
        """Public care KPIs of a grid tile from its differentially private release."""
        row = w.site or CITY
        released = dp.values(w.start, w.end, self.clock())
        known = self.scalar(self.run([_known_devices("wearable", w.site)])[0], column=0) or 0.0
        kpis: list[Kpi] = []
        for col in COLUMNS:
            kpi = self._kpi(w, CARE_KPI_ID[col], None, *_CARE_META[col])
            if released is None:
                kpi.suppressed = True
                kpi.note = (
                    "withheld until the tile's differentially private release at "
                    f"{iso(dp.ready_at(w.end))}"
                )
            elif (row, col) in released:
                kpi.value = float(released[(row, col)])
            else:  # a district that had no telemetry yet when the tile was released
                kpi.suppressed, kpi.note = True, "not in this tile's private release"
            kpis.append(kpi)
        residents = kpis[0].value
        pct = self._kpi(
            w,
            "wearables_reporting_pct",
            None if residents is None else _pct(min(residents, known), known),
            "%",
            "Wearables with a reading in the window (differentially private) / wearables "
            "known to the database",
        )
        pct.suppressed = residents is None
        ack = self._kpi(w, "alerts_ack_p90_s", None, "s", _ACK_DEFINITION)
        ack.suppressed, ack.note = True, "not published under differential privacy"
        kpis += [pct, ack]
        return ThemeResult("care", iso(w.start), iso(w.end), w.site, kpis, [dp.policy.note()])

    def alerts_ack_p90(self, w: Window, k: int | None = None) -> Kpi:
        """``alerts_ack_p90_s`` from ``alert_state`` (written by ``machi alerts run``): care
        alerts only; withheld, like every care figure, when the acknowledged alerts come
        from fewer than k residents."""
        cond = f'{w.where()} AND "type" =~ /^({"|".join(ALERT_TYPES)})$/'
        res = self.run(
            [
                f"SELECT PERCENTILE(ack_s, 90) FROM {ALERT_STATE} WHERE {cond}",
                f"SELECT COUNT(a) FROM (SELECT MAX(ack_s) AS a FROM {ALERT_STATE} "
                f"WHERE {cond} GROUP BY device_id)",
            ]
        )
        kpi = self._kpi(w, "alerts_ack_p90_s", self.scalar(res[0]), "s", _ACK_DEFINITION)
        k = self.policy.k_public if k is None else k
        if (self.scalar(res[1]) or 0.0) < k:
            kpi.value, kpi.suppressed = None, True
            kpi.note = f"suppressed: acknowledged alerts of fewer than k={k} residents"
        return kpi

    def transit(self, w: Window) -> ThemeResult:
        where = w.where()
        c = self.config
        # headway_s is measured by the events worker at the source (the gap from the
        # previous arrival of the route at the stop), so this is plain aggregates.
        headway = (
            "SELECT MEAN(cv) FROM (SELECT STDDEV(headway_s) / MEAN(headway_s) AS cv "
            f"FROM {BUS_ARRIVAL} WHERE {where} AND headway_s > 0 "
            f"AND headway_s <= {int(c.max_headway_s)} GROUP BY route_id, stop_id)"
        )
        res = self.run(
            [
                f"SELECT COUNT(delay_s), MEAN(delay_s) FROM {BUS_ARRIVAL} WHERE {where}",
                f"SELECT COUNT(delay_s) FROM {BUS_ARRIVAL} WHERE {where} "
                f"AND delay_s >= {-int(c.on_time_early_s)} "
                f"AND delay_s <= {int(c.on_time_late_s)}",
                _count_devices("bus", where),
                f"SELECT MEAN(speed_kmh) FROM bus WHERE {where}",
                headway,
            ]
        )
        arrivals = self.scalar(res[0]) or 0.0
        on_time = self.scalar(res[1]) or 0.0
        return ThemeResult(
            "transit",
            iso(w.start),
            iso(w.end),
            w.site,
            [
                self._kpi(
                    w,
                    "on_time_performance_pct",
                    _pct(on_time, arrivals),
                    "%",
                    f"Stop arrivals from {c.on_time_early_s} s early to {c.on_time_late_s} s late"
                    " / all matched arrivals",
                ),
                self._kpi(
                    w,
                    "avg_delay_s",
                    self.scalar(res[0], column=2),
                    "s",
                    "Mean delay of matched stop arrivals (negative = early)",
                ),
                self._kpi(
                    w,
                    "active_vehicles",
                    self.scalar(res[2]) or 0.0,
                    "vehicles",
                    "Distinct buses with at least one GPS fix in the window",
                ),
                self._kpi(
                    w,
                    "avg_speed_kmh",
                    self.scalar(res[3]),
                    "km/h",
                    "Mean reported speed over all bus fixes (stops included)",
                ),
                self._kpi(
                    w,
                    "headway_cv",
                    self.scalar(res[4]),
                    "ratio",
                    "Mean over (route, stop) of stddev/mean of the gaps between arrivals"
                    f" (gaps over {c.max_headway_s} s are service breaks, excluded)",
                ),
            ],
        )

    def platform(self, w: Window) -> ThemeResult:
        online_from = max(w.start, w.end - timedelta(seconds=self.config.online_window_s))
        city_wide = w.where(with_site=False)
        res = self.run(
            [
                _count_devices("energy_meter, wearable, bus", w.where(start=online_from)),
                f"SELECT MAX(last) FROM (SELECT LAST(lag_s) FROM {INGEST_STATS} "
                f"WHERE {city_wide} GROUP BY worker)",
                _counter_sum("rejected", INGEST_STATS, city_wide, by="worker"),
            ]
        )
        notes = []
        if w.site is not None:
            notes.append("ingest_lag_s and rejected_messages are city-wide (ingest has no site)")
        return ThemeResult(
            "platform",
            iso(w.start),
            iso(w.end),
            w.site,
            [
                self._kpi(
                    w,
                    "devices_online",
                    self.scalar(res[0]) or 0.0,
                    "devices",
                    f"Devices with a reading in the last {self.config.online_window_s} s"
                    " of the window",
                ),
                self._kpi(
                    w,
                    "ingest_lag_s",
                    self.scalar(res[1]),
                    "s",
                    "Largest latest lag_s reported by any ingest worker in the window",
                ),
                self._kpi(
                    w,
                    "rejected_messages",
                    self.scalar(res[2]) or 0.0,
                    "messages",
                    "Messages rejected by ingest in the window (steps of the per-worker counter)",
                ),
            ],
            notes,
        )


_ACK_DEFINITION = (
    "90th percentile of the time from opening to acknowledgement of care alerts "
    "opened in the window (acknowledged ones)"
)

#: The KPI id of each care-table column.
CARE_KPI_ID = {
    col: {RESIDENTS: "residents_monitored", TOTAL: "alerts_total"}.get(col, f"alerts_{col}")
    for col in COLUMNS
}
#: (unit, definition) of each care column.
_CARE_META: dict[str, tuple[str, str]] = {
    RESIDENTS: ("residents", "Distinct wearables with at least one reading in the window"),
    **{t: ("alerts", f"Care alert episodes of type {t} opened in the window") for t in ALERT_TYPES},
    TOTAL: ("alerts", "Care alert episodes of every type opened in the window"),
}


def _green_notes(gaps: int, corr: Corrections, stored: bool) -> list[str]:
    """What the green answer did not interpolate, and what to do about it."""
    notes = []
    gap_min = interp.GAP_MS // 60000
    if gaps:
        notes.append(
            f"{gaps} meter(s) have a gap of over {gap_min} min between "
            "readings at the window's start or end: not interpolated there, the gap's "
            "energy is counted in the interval of the reading after it"
        )
    if corr.gaps:
        notes.append(
            f"{corr.gaps} time(s) a meter has a gap of over {gap_min} min between readings at "
            "a 30-minute slot boundary inside the window: not interpolated there, the gap's "
            "energy is counted in the slot of the reading after it"
        )
    if corr.missing:
        first, last, stop = (
            iso(datetime.fromtimestamp(b / 1000, UTC))
            for b in (corr.missing[0], corr.missing[-1], corr.missing[-1] + SLOT_MS)
        )
        setup = "" if stored else "`machi api setup-rollups`, then "
        notes.append(
            f"{len(corr.missing)} 30-minute slot boundary(ies) inside the window ({first} "
            f"to {last}) are not stored: not interpolated there, their slots follow the "
            "step rule (up to a sampling period's energy in the next slot); store them "
            f"with {setup}`machi api rollup --start {first} --end {stop}`"
        )
    return notes


def _total(slots: dict[int, float]) -> float | None:
    return float(sum(slots.values())) if slots else None


def _pct(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 3)
