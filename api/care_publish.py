"""The care publisher: protected care figures of each public grid tile, into InfluxDB.

Grafana cannot apply complementary suppression or a fixed time grid: a viewer picks any
site subset and any range. So the care boards never read raw care data. The API
computes each complete tile of the public grid (``contract.disclosure.Policy``, 24 h
from 00:00 JST by default) once, applies the public policy exactly as
``/v1/kpis/care`` does (k, the group rule, complementary suppression, small counts as
ranges), and writes the result as ``contract.rules.CARE_PUBLISHED`` points, one per
tile and row (each site and the city). The boards read those points only.

Every round rewrites the newest ``tiles`` complete tiles (late data, e.g. an edge outbox
draining after an outage). A tile is rewritten only when its figures changed, and then
its old points are deleted first: InfluxDB merges the fields of a rewritten point, so a
figure withheld now would otherwise keep the number published before.

Limit (docs/security.md): a viewer who saw a tile before and after late data changed it
can difference the two versions; the figures of a tile settle once its late data is in.
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from api.kpis import KpiEngine, Window
from api.rollups import ts
from contract.disclosure import CITY, COLUMNS, RESIDENTS, CareTable, Policy, Protected, protect
from contract.influx import InfluxError, InfluxV1, quote_ident
from contract.lineprotocol import line
from contract.periodic import Periodic
from contract.rules import CARE_PUBLISHED, CARE_PUBLISHED_MEANS

__all__ = ["CarePublisher", "publish_tile", "tile_points"]

log = logging.getLogger("machi.api.care_publish")

WITHHELD = "-"


def shown(prot: Protected, cell: tuple[str, str]) -> str:
    """The text a board shows for a cell: the number, ``lo-hi`` or ``-``."""
    if cell in prot.ranges:
        lo, hi = prot.ranges[cell]
        return f"{lo}-{hi}"
    value = prot.value(cell)
    return WITHHELD if value is None else str(value)


def _means(engine: KpiEngine, w: Window) -> dict[str, dict[str, float]]:
    """Row -> field -> mean of the per-resident means over ``w`` (every row, unprotected)."""
    fields = ", ".join(f"MEAN({quote_ident(f)}) AS {quote_ident(f)}" for f in CARE_PUBLISHED_MEANS)
    outer = fields  # the same names: the mean over residents of each resident's mean
    inner = f"SELECT {fields} FROM wearable WHERE {w.time_clause()} GROUP BY device_id, site"
    res = engine.run(
        [f"SELECT {outer} FROM ({inner}) GROUP BY site", f"SELECT {outer} FROM ({inner})"]
    )
    out: dict[str, dict[str, float]] = {}
    for i, series in enumerate(res):
        for s in series:
            row = CITY if i else s.get("tags", {}).get("site")
            if not row or not s.get("values"):
                continue
            cols, values = s["columns"], s["values"][0]
            out[row] = {
                c: float(v)
                for c, v in zip(cols, values, strict=True)
                if c != "time" and v is not None
            }
    return out


def tile_points(
    table: CareTable, means: dict[str, dict[str, float]], policy: Policy
) -> dict[str, dict[str, Any]]:
    """Row -> the fields of its tile point, after the public policy."""
    prot = protect(table, policy.k_public, policy.small_count)
    out: dict[str, dict[str, Any]] = {}
    for row in [*table.sites, CITY]:
        fields: dict[str, Any] = {"k": policy.k_public, "grid_h": policy.grid_h}
        for col in COLUMNS:
            fields[col] = prot.value((row, col))
            fields[f"{col}_shown"] = shown(prot, (row, col))
        if prot.value((row, RESIDENTS)) is not None:
            fields.update(means.get(row, {}))
        out[row] = fields
    return out


def _stored(influx: InfluxV1, start: datetime) -> dict[str, dict[str, Any]]:
    rows = influx.rows(
        f"SELECT * FROM {quote_ident(CARE_PUBLISHED)} WHERE time = {ts(start)} GROUP BY site"
    )
    return {
        r["site"]: {k: v for k, v in r.items() if k not in ("time", "site") and v is not None}
        for r in rows
    }


def _same(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> bool:
    def norm(d: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            r: {
                k: (round(v, 9) if isinstance(v, float) else v)
                for k, v in f.items()
                if v is not None
            }
            for r, f in d.items()
        }

    return norm(a) == norm(b)


def publish_tile(engine: KpiEngine, start: datetime, end: datetime) -> bool:
    """Compute, protect and store one tile; True when its points were (re)written."""
    w = Window(start, end, None)
    table, _ = engine.care_table(w)
    points = tile_points(table, _means(engine, w), engine.policy)
    influx = engine.influx
    stored = _stored(influx, start)
    if _same(stored, points):
        return False
    if stored:
        # Drop the old version first: fields now withheld must not survive the rewrite.
        influx.execute(
            f"DELETE FROM {quote_ident(CARE_PUBLISHED)} "
            f"WHERE time >= {ts(start)} AND time <= {ts(start)}"
        )
    ms = int(start.timestamp() * 1000)
    body = "\n".join(line(CARE_PUBLISHED, {"site": row}, f, ms) for row, f in points.items())
    r = influx.write_lines(body.encode())
    if r.status_code != 204:  # InfluxError: the round fails, is counted, the next retries
        raise InfluxError(r.status_code, f"InfluxDB refused the care points of {start}: {r.text}")
    return True


class CarePublisher(Periodic):
    """Republishes the newest ``tiles`` complete tiles every ``interval_s`` seconds."""

    name = "care-publisher"
    failure_message = "publishing protected care figures failed; the boards keep the last ones"

    def __init__(
        self,
        engine: KpiEngine,
        interval_s: float,
        tiles: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(interval_s, log)
        self.engine = engine
        self.tiles = tiles
        self.clock = clock
        self.written = 0

    def due(self) -> list[tuple[datetime, datetime]]:
        """The newest ``tiles`` complete tiles, oldest first."""
        end = self.engine.policy.last_tile(datetime.fromtimestamp(self.clock(), UTC))[1]
        grid = self.engine.policy.grid
        return [(end - (i + 1) * grid, end - i * grid) for i in reversed(range(self.tiles))]

    def refresh(self) -> int:
        t0 = time.monotonic()
        written = sum(publish_tile(self.engine, a, b) for a, b in self.due())
        if self.engine.dp is not None:
            # Release settled tiles without waiting for a public request to ask for them.
            now = datetime.fromtimestamp(self.clock(), UTC)
            for a, b in self.due():
                self.engine.dp.values(a, b, now)
        self.written += written
        self.rounds += 1
        self.last_round_s = time.monotonic() - t0
        return written
