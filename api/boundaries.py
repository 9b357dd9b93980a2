"""Counters interpolated at every 30-minute slot boundary, stored in ``machi_rollup``.

The step rule (``api.rollups``) counts a meter's energy up to its last reading at or
before a boundary b; ``delta(b)`` (``api.interp``) is the rest up to b, which the step
rule puts in the slot *after* b. The API adds it to the slot ending at b and takes it
off the slot starting at b (``api.inner``), so 30-minute demand is exact for readings
off the boundaries. Per boundary this module computes every meter's delta with the two
``interp.side`` statements (all meters at once) and writes, stamped exactly at b:

- ``energy_boundary`` (tags device_id, site): ``imp_delta``, ``exp_delta``, 0.0 where
  not interpolable, so a rewrite overwrites every field (InfluxDB 1.x merges the
  fields of a rewritten point);
- ``energy_boundary_site`` (tag site): their sums, ``meters`` interpolated, ``gaps``
  (meters with a gap over ``interp.GAP_MS`` at b: not interpolated);
- ``energy_boundary_mark`` (no tags): ``meters``, ``gaps``, ``complete`` (1 when computed
  at or after b + ``interp.GAP_MS``, every reading that counts in; 0: provisional, the
  API's writer recomputes it each round until complete): written for every boundary
  computed, even without meters, so readers know which boundaries are covered.

Recomputing a boundary writes the same points (idempotent); a late reading changes them.
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from api import interp
from contract.influx import InfluxError, InfluxV1, quote_ident
from contract.lineprotocol import line
from contract.rules import DEMAND_SLOT_MS, ROLLUP_RP

METER = "energy_boundary"
SITE = "energy_boundary_site"
MARK = "energy_boundary_mark"
SLOT_MS = DEMAND_SLOT_MS
#: The API's writer first stores a boundary (provisionally) this long after it: readings
#: reach InfluxDB seconds after they are taken.
SETTLE_MS = 60_000
#: Boundaries per request (two statements each): ~1 s for 600 meters, well inside the
#: API client's 10 s timeout (the writer shares it).
BATCH = 12


@dataclass(frozen=True)
class MeterDelta:
    """One meter's interpolated energy from its last reading up to a boundary; None
    where it is not interpolated (a gap, or no reading on one side)."""

    site: str
    imp: float | None
    exp: float | None
    gap: bool  # import not interpolated although the meter reported around b


@dataclass
class Boundary:
    """Every meter's delta at one boundary ``b_ms``."""

    b_ms: int
    complete: bool = True  # computed at or after b + interp.GAP_MS: every reading was in
    meters: dict[str, MeterDelta] = field(default_factory=dict)

    @property
    def gaps(self) -> int:
        return sum(m.gap for m in self.meters.values())

    @property
    def interpolated(self) -> int:
        return sum(m.imp is not None for m in self.meters.values())

    def lines(self) -> list[str]:
        """The boundary's points: per meter, per site, and its marker."""
        out = []
        sites: dict[str, list[MeterDelta]] = {}
        for dev in sorted(self.meters):
            m = self.meters[dev]
            sites.setdefault(m.site, []).append(m)
            fields = {"imp_delta": m.imp or 0.0, "exp_delta": m.exp or 0.0}
            out.append(line(METER, {"device_id": dev, "site": m.site}, fields, self.b_ms))
        for site in sorted(sites):
            ms = sites[site]
            sums = {
                "imp_delta": float(sum(m.imp or 0.0 for m in ms)),
                "exp_delta": float(sum(m.exp or 0.0 for m in ms)),
                "meters": sum(m.imp is not None for m in ms),
                "gaps": sum(m.gap for m in ms),
            }
            out.append(line(SITE, {"site": site}, sums, self.b_ms))
        mark = {"meters": self.interpolated, "gaps": self.gaps, "complete": int(self.complete)}
        out.append(line(MARK, {}, mark, self.b_ms))
        return out


def grid(lo_ms: int, hi_ms: int) -> list[int]:
    """The slot boundaries b with lo_ms <= b <= hi_ms."""
    first = -(-lo_ms // SLOT_MS) * SLOT_MS
    return list(range(first, hi_ms + 1, SLOT_MS))


def statements(
    db: str, bs: Iterable[int], site: str = "", by: str = "device_id, site"
) -> list[str]:
    """Per boundary: each meter's last reading at or before it and first after it."""
    raw = f"{quote_ident(db)}..energy_meter"
    return [interp.side(raw, b, after, site, by) for b in bs for after in (False, True)]


def boundary(
    b_ms: int, before: list[dict[str, Any]], after: list[dict[str, Any]], complete: bool
) -> Boundary:
    """Every meter's delta at ``b_ms`` from the two :func:`statements` answers.

    ``complete``: every reading after b within the gap limit is in (b + GAP <= now);
    otherwise a meter with nothing after b yet has no gap, only no delta yet."""
    a, z = interp.readings(before), interp.readings(after)
    sites = {**_sites(after), **_sites(before)}
    out = Boundary(b_ms, complete)
    for dev in sorted(a.keys() | z.keys()):
        imp = interp.delta(b_ms, a.get(dev), z.get(dev), 0)
        exp = interp.delta(b_ms, a.get(dev), z.get(dev), 1)
        gap = imp is None and (complete or dev in z)
        out.meters[dev] = MeterDelta(sites.get(dev, ""), imp, exp, gap)
    return out


def _sites(series: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for s in series:
        tags = s.get("tags", {})
        out[tags.get("device_id", "")] = tags.get("site", "")
    return out


def compute(influx: InfluxV1, bs: list[int], now_ms: int) -> list[Boundary]:
    """The boundaries ``bs`` from raw points, :data:`BATCH` per request."""
    out = []
    for i in range(0, len(bs), BATCH):
        chunk = bs[i : i + BATCH]
        res = influx.query_many(statements(influx.db, chunk))
        for j, b in enumerate(chunk):
            out.append(boundary(b, res[2 * j], res[2 * j + 1], b + interp.GAP_MS <= now_ms))
    return out


def write(influx: InfluxV1, bs: list[Boundary]) -> int:
    """Store the boundaries' points in ``machi_rollup``; return how many were written."""
    lines = [ln for b in bs for ln in b.lines()]
    if not lines:
        return 0
    r = influx.write_lines("\n".join(lines).encode(), rp=ROLLUP_RP)
    if r.status_code != 204:
        raise InfluxError(r.status_code, f"writing slot-boundary corrections: {r.text.strip()}")
    return len(lines)


def fill(
    influx: InfluxV1,
    lo_ms: int,
    hi_ms: int,
    now_ms: int | None = None,
    settle_ms: int = interp.GAP_MS,
) -> int:
    """Compute and store every boundary in ``[lo_ms, hi_ms]`` at least ``settle_ms`` old,
    oldest first, a batch at a time (an interrupted fill leaves its newest marker at the
    last boundary done); return points written. By default only complete boundaries
    (b + ``interp.GAP_MS`` <= now: every reading after b that counts is in); the writer
    also stores newer ones *provisionally* (marker ``complete`` = 0) and recomputes them
    each round until they are complete."""
    now = _now_ms() if now_ms is None else now_ms
    bs = grid(lo_ms, min(hi_ms, now - settle_ms))
    written = 0
    for i in range(0, len(bs), BATCH):
        written += write(influx, compute(influx, bs[i : i + BATCH], now))
    return written


def last_mark(influx: InfluxV1, complete: bool = False) -> int | None:
    """The newest boundary stored (ms; with ``complete``, the newest complete one), or
    None (none yet, or no rollup policy)."""
    where = " WHERE complete = 1" if complete else ""
    q = f"SELECT LAST(meters) FROM {quote_ident(influx.db)}.{quote_ident(ROLLUP_RP)}.{MARK}{where}"
    try:
        series = influx.query(q)
    except InfluxError:
        return None  # the retention policy does not exist yet
    for s in series:
        for row in s.get("values", []):
            return int(row[0])
    return None


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
