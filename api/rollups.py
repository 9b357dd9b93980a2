"""Green-theme rollups computed inside InfluxDB by continuous queries (CQs).

Raw meter points stay in the database's default retention policy. Three statements
downsample them into the ``machi_rollup`` retention policy, on the 5-minute grid:

1. ``machi_rollup.energy_meter`` per meter per 5 min: ``imp_kwh`` / ``exp_kwh``, the
   step of the interval-end counter reading (``LAST``) from the meter's previous
   reading, reset-aware (:func:`increase`: after a counter reset the new counter's
   value is the increment, as Prometheus ``increase()`` counts it); gaps are bridged
   (see below). Intervals are right-closed, ``(b, b + 5 min]`` (``GROUP BY time(5m,
   1ms)``, points stamped ``b + 1 ms``): a reading taken exactly on a boundary closes
   the interval before it, so 1-minute samples on the minute give each interval its own
   energy instead of lagging one sample behind.
2. the same measurement: ``imp_last`` / ``exp_last`` (interval-end readings) and ``n``
   (readings in the interval). The measurement keeps the raw name on purpose: a query
   can then merge rollup and raw points of one meter into one series (the raw tail).
3. ``machi_rollup.energy_site`` per site per 5 min: the sums of (1) over meters.

Each is a CQ with ``RESAMPLE EVERY 5m FOR 1h``, so an interval is recomputed for an hour
after it ends: readings up to one hour late are included, later ones only by
``machi api rollup --start ... --end ...`` (the same statements, run on demand). Every
5 minutes rather than every minute: each run recomputes an hour of every meter, and
once per grid interval is enough to pick up late data (a fifth of the CQ load).

Why gaps are bridged although InfluxDB reaches back only one interval: a CQ run whose
oldest interval has no earlier reading in reach emits *no row* for it, so the value
an earlier run wrote (when its window still held the reading before the gap) stays.
A gap is bridged when it is shorter than the resample window (1 h).
"""

# ruff: noqa: S608 -- statements are built from constants, identifiers we quote and
# timestamps we format ourselves.
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from api import boundaries, interp
from contract.influx import InfluxV1, quote_ident
from contract.rules import ROLLUP_RP

RP = ROLLUP_RP
GRID = timedelta(minutes=5)
#: Late-data window: how long after it ends an interval is still recomputed by the CQs.
LATE = timedelta(hours=1)
EVERY = timedelta(minutes=5)
#: How far behind real time the rollup is trusted to be complete. An interval closes at
#: f; the meter CQ run at the next tick after f + EVERY has all its (seconds-late) data;
#: the site CQ may run before the meter CQ in a tick (CQs recreated on upgrade change the
#: order), so it is complete one tick later; plus a margin for the runs themselves.
LAG = 2 * EVERY + timedelta(minutes=1)
CQ_PREFIX = "machi_green_"
_MS = timedelta(milliseconds=1)
COUNTERS = ("energy_import_kwh", "energy_export_kwh")


def ts(t: datetime) -> str:
    """An RFC 3339 literal formatted by us from a datetime (never user text)."""
    return "'" + t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z'"


def floor_grid(t: datetime) -> datetime:
    step = int(GRID.total_seconds())
    sec = int(t.timestamp())
    return datetime.fromtimestamp(sec - sec % step, UTC)


def ceil_grid(t: datetime) -> datetime:
    f = floor_grid(t)
    return f if f == t.astimezone(UTC) else f + GRID


#: Right-closed 5-minute intervals (b, b + 5 min]: see the module docstring.
GRID_BY = "time(5m, 1ms)"


def step_parts(x: str, name: str) -> str:
    """The per-interval aggregates :func:`increase` needs, for field ``x``: the step from
    the meter's previous reading ``{name}_d``, the last reading ``{name}_l`` and the
    largest ``{name}_m``. Computed once in a subquery: InfluxDB evaluates each function
    call of a SELECT separately, so spelling them out in the expression costs ~10x."""
    return f"DIFFERENCE(LAST({x})) AS {name}_d, LAST({x}) AS {name}_l, MAX({x}) AS {name}_m"


def increase(name: str) -> str:
    """InfluxQL for the counter increase over one interval, from :func:`step_parts`
    ``name``; reset-aware as Prometheus ``increase()``.

    With D the step (this interval's last reading minus the meter's previous one): D when
    D >= 0; after a counter reset (D < 0) the old counter's increase up to the reset,
    MAX - (LAST - D), plus the new counter's reading LAST (it restarted from 0). InfluxQL
    has no conditional, so with pos(a) = (a + |a|) / 2 and neg(a) = CEIL(-a / (|a| + 1))
    (1 for a < 0, else 0; exact while |a| < 2**53):
    ``pos(D) + neg(D) * (LAST + pos(MAX - LAST + D))``. Exact for one reset per interval
    with the counter rising on each side of it.
    """
    d, last, top = f"{name}_d", f"{name}_l", f"{name}_m"
    q = f"{top} - {last} + {d}"
    return (
        f"({d} + ABS({d})) / 2 + CEIL(-1 * {d} / (ABS({d}) + 1)) * ({last} + ({q} + ABS({q})) / 2)"
    )


def per_meter_increase(source: str, fields: tuple[str, str], where: str, by: str) -> str:
    """Subquery of per-meter, per-interval increases ``ci`` (import) and ``ce`` (export)
    of ``fields`` from ``source`` grouped by ``by``. The arithmetic level is grouped by
    meter: InfluxDB 1.6 merges the series of such a subquery when its outer query does
    not group by meter, collapsing meters that share a timestamp."""
    tags = by[by.index(")") + 1 :].lstrip(", ")  # the tags after time(...)
    parts = (
        f"SELECT {step_parts(fields[0], 'i')}, {step_parts(fields[1], 'e')} "
        f"FROM {source}{where} GROUP BY {by}"
    )
    return (
        f"SELECT {increase('i')} AS ci, {increase('e')} AS ce FROM ({parts}){where} GROUP BY {tags}"
    )


@dataclass(frozen=True)
class Rollup:
    """One rollup statement: its CQ name and its SELECT ... INTO body."""

    name: str
    select: str
    group_by: str

    def statement(self, start: datetime | None = None, end: datetime | None = None) -> str:
        """The SELECT ... INTO for ``[start, end)``; without a range, the CQ body."""
        where = (
            ""
            if start is None or end is None
            else f" WHERE time >= {ts(start)} AND time < {ts(end)}"
        )
        return f"{self.select}{where} GROUP BY {self.group_by}"


def rollups(db: str) -> list[Rollup]:
    """The green rollups of database ``db``, in the order they must run."""
    d = quote_ident(db)
    raw = f"{d}..energy_meter"  # the database's default retention policy
    meter = f"{d}.{quote_ident(RP)}.energy_meter"
    site = f"{d}.{quote_ident(RP)}.energy_site"
    by_meter = f"{GRID_BY}, device_id, site"
    return [
        Rollup(
            "meter_steps",
            "SELECT SUM(ci) AS imp_kwh, SUM(ce) AS exp_kwh INTO "
            f"{meter} FROM ({per_meter_increase(raw, COUNTERS, '', by_meter)})",
            by_meter,
        ),
        Rollup(
            "meter_last",
            "SELECT LAST(energy_import_kwh) AS imp_last, LAST(energy_export_kwh) AS exp_last, "
            f"COUNT(seq) AS n INTO {meter} FROM {raw}",
            by_meter,
        ),
        Rollup(
            "site",
            f"SELECT SUM(imp_kwh) AS imp_kwh, SUM(exp_kwh) AS exp_kwh INTO {site} FROM {meter}",
            f"{GRID_BY}, site",
        ),
    ]


def _duration(d: timedelta) -> str:
    # As InfluxDB echoes durations back in SHOW CONTINUOUS QUERIES (1h, 5m, 90s).
    sec = int(d.total_seconds())
    for unit, n in (("h", 3600), ("m", 60)):
        if sec % n == 0:
            return f"{sec // n}{unit}"
    return f"{sec}s"


def _resample(every: timedelta) -> str:
    return f"RESAMPLE EVERY {_duration(every)} FOR {_duration(LATE)}"


def _cq(db: str, r: Rollup, every: timedelta) -> str:
    return (
        f"CREATE CONTINUOUS QUERY {quote_ident(CQ_PREFIX + r.name)} ON {quote_ident(db)} "
        f"{_resample(every)} BEGIN {r.statement()} END"
    )


def existing_cqs(influx: InfluxV1) -> dict[str, str]:
    """CQ name -> query text of the CQs on ``influx.db``."""
    out: dict[str, str] = {}
    for s in influx.query("SHOW CONTINUOUS QUERIES"):
        if s.get("name") == influx.db:
            for name, text in s.get("values", []) or []:
                out[name] = text
    return out


def setup(influx: InfluxV1, every: timedelta = EVERY) -> list[str]:
    """Create the retention policy and the CQs if missing (idempotent); return what was done.

    ``CREATE CONTINUOUS QUERY`` fails when the CQ exists, so existing names are checked
    first. A CQ whose text no longer matches ours (an older machi, another ``every``) is
    dropped and recreated. ``every`` other than ``EVERY`` is for tests (a CQ that runs
    each minute); the API's frontier assumes ``EVERY``.
    """
    done: list[str] = []
    rps = {row[0] for s in influx.query("SHOW RETENTION POLICIES") for row in s.get("values", [])}
    if RP not in rps:
        # INF: rollups are tiny (1/5 of 1-minute data per meter, far less per site).
        influx.execute(
            f"CREATE RETENTION POLICY {quote_ident(RP)} ON {quote_ident(influx.db)} "
            "DURATION INF REPLICATION 1"
        )
        done.append(f"created retention policy {RP}")
    have = existing_cqs(influx)
    steps = have.get(CQ_PREFIX + "meter_steps", "").lower()
    if "non_negative_difference" in steps:
        # Rollups of machi before 2026-12: left-closed grid, resets dropped. Their points
        # sit at other timestamps than the new ones and would be added to them: drop
        # them (only this retention policy; raw data stays) and let the back-fill redo it.
        influx.execute(f"DROP RETENTION POLICY {quote_ident(RP)} ON {quote_ident(influx.db)}")
        influx.execute(
            f"CREATE RETENTION POLICY {quote_ident(RP)} ON {quote_ident(influx.db)} "
            "DURATION INF REPLICATION 1"
        )
        done.append(f"dropped the old-grid rollup points in {RP}; back-fill to recompute them")
    for r in rollups(influx.db):
        name = CQ_PREFIX + r.name
        want = r.statement()
        if name in have:
            text = _normal(have[name])
            if _normal(want) in text and _normal(_resample(every)) in text:
                continue
            influx.execute(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(influx.db)}")
            done.append(f"dropped outdated continuous query {name}")
        influx.execute(_cq(influx.db, r, every))
        done.append(f"created continuous query {name}")
    return done


def _normal(q: str) -> str:
    # InfluxDB echoes a CQ back re-formatted (lower-case functions, resolved RPs, quotes).
    return "".join(q.lower().replace('"', "").replace("autogen", "").split())


def installed(influx: InfluxV1) -> bool:
    """True when every rollup CQ exists on the database."""
    have = existing_cqs(influx)
    return all(CQ_PREFIX + r.name in have for r in rollups(influx.db))


def run(influx: InfluxV1, start: datetime, end: datetime) -> int:
    """Compute the rollups for ``[start, end)`` now, exactly as the CQs do, and the
    slot-boundary corrections around it (``api.boundaries``); return points written.

    Used for back-fills, for data later than the late-data window and by the tests (the
    CQ scheduler is too slow for them). The range is widened back by ``LATE`` so that the
    first interval's step is measured from the meter's previous reading, as in the CQs.
    """
    lo, hi = floor_grid(start - LATE), ceil_grid(end)
    written = 0
    for r in rollups(influx.db):
        # A day of raw points per statement keeps each request well inside the timeout.
        t = lo
        while t < hi:
            u = min(hi, t + timedelta(days=1))
            # Chunks overlap by LATE so every chunk's first interval has its predecessor.
            # Shifted by 1 ms: the intervals are (b, b + 5 min], so a reading exactly on
            # the range's last boundary still closes its interval.
            a = (t - LATE if t > lo else t) + _MS
            body = influx.execute(r.statement(a, u + _MS))
            for res in body.get("results", []):
                for s in res.get("series", []):
                    written += int(s["values"][0][1])
            t = u
    # The slot-boundary corrections of the range (readings within interp.GAP_MS of it
    # move the boundaries either side of it).
    gap = timedelta(milliseconds=interp.GAP_MS)
    return written + boundaries.fill(influx, _ms(start - gap), _ms(end + gap))


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)
