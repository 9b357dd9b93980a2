"""Optional differentially private public care counts (OpenDP), with a stated ε per tile.

When ``MACHI_CARE_DP_EPSILON`` is set, public care counts of a grid tile are no longer
published exact-or-withheld (``contract.disclosure``) but as a differentially private
release, made once per tile and kept:

- **Unit of privacy:** one resident (one wearable) in one tile. Each wearable counts in
  one district, the one of its newest reading in the tile, and its alert episodes count
  there too, at most ``max_alerts`` per tile across all types (in ``ALERT_TYPES`` order).
  So adding or removing one resident changes the residents vector by at most 1 and the
  alerts vector by at most ``max_alerts`` (L1).
- **Mechanism:** OpenDP's Laplace measurement on integer vectors (the discrete Laplace
  distribution, exact integer sampling) over every district of the deployment: residents
  with scale ``2 / ε`` and alerts with scale ``2 * max_alerts / ε``, so each costs ε/2
  (checked with the measurements' own privacy maps) and the tile costs ε (sequential
  composition).
- **Post-processing** (costs no privacy): negative counts become 0, and the city row and
  the totals are the sums of the noisy district cells, so the published table adds up.
- **Kept, not redrawn:** a tile is released once, when it has been over for ``settle_s``
  (late data), and its figures are written to ``contract.rules.CARE_DP``; every later
  answer, in any API process and after restarts, reads them back. Asking again gives the
  same numbers, so averaging answers gains nothing. Data arriving after the release is not
  in it. Before the release the tile's public care figures are withheld.

Care and operator keys still get exact figures (audited); the Grafana boards keep the
k-suppressed figures (they are staff-facing).
"""

# ruff: noqa: S608 -- built from constants, quoted identifiers and our own timestamps.
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.rollups import ts
from contract.disclosure import CITY, RESIDENTS, TOTAL, Cell
from contract.events import CARE_ALERT
from contract.influx import InfluxError, InfluxV1, quote_ident
from contract.lineprotocol import line
from contract.rules import ALERT_TYPES, CARE_DP

__all__ = ["DpPolicy", "DpRelease", "assign", "noisy_table"]


@dataclass(frozen=True)
class DpPolicy:
    epsilon: float
    max_alerts: int = 3
    settle_s: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.epsilon <= 10:
            raise ValueError(f"MACHI_CARE_DP_EPSILON={self.epsilon} must be in (0, 10]")
        if self.max_alerts < 1:
            raise ValueError(f"MACHI_CARE_DP_MAX_ALERTS={self.max_alerts} must be at least 1")

    @property
    def scales(self) -> tuple[float, float]:
        """Laplace scales of the residents and the alerts vectors."""
        return 2 / self.epsilon, 2 * self.max_alerts / self.epsilon

    def measurements(self) -> tuple[Any, Any]:
        """The two OpenDP measurements; raises if either costs more than ε/2."""
        import opendp.prelude as dp

        dp.enable_features("contrib")
        space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
        residents, alerts = (dp.m.make_laplace(*space, scale=s) for s in self.scales)
        for m, d_in in ((residents, 1), (alerts, self.max_alerts)):
            spent = m.map(d_in)
            if spent > self.epsilon / 2 * (1 + 1e-9):
                raise ValueError(f"a measurement spends {spent} > epsilon / 2")
        return residents, alerts

    def note(self) -> str:
        return (
            f"differentially private counts (OpenDP, discrete Laplace): epsilon = "
            f"{self.epsilon:g} per tile ({self.epsilon / 2:g} for residents, "
            f"{self.epsilon / 2:g} for alerts); each resident counts in one district and "
            f"with at most {self.max_alerts} alert(s) per tile; drawn once per tile and "
            "kept; negative counts shown as 0, city and totals are sums (docs/kpis.md)"
        )


def assign(
    readings: list[dict[str, Any]], alerts: list[dict[str, Any]], max_alerts: int
) -> tuple[dict[str, int], dict[Cell, int]]:
    """Contributions with bounded sensitivity: residents per district and clamped alert
    episodes per (district, type). ``readings``: LAST(seq) per (device_id, site);
    ``alerts``: COUNT per (device_id, site, type)."""
    home: dict[str, tuple[int, str]] = {}
    for s in readings:
        tags = s.get("tags", {})
        for row in s.get("values", []):
            dev, site, t = tags.get("device_id", ""), tags.get("site", ""), int(row[0])
            if dev and site and (dev not in home or t >= home[dev][0]):
                home[dev] = (t, site)
    residents: dict[str, int] = {}
    for _t, site in home.values():
        residents[site] = residents.get(site, 0) + 1
    per_dev: dict[str, dict[str, int]] = {}
    for s in alerts:
        tags = s.get("tags", {})
        dev, typ = tags.get("device_id", ""), tags.get("type", "")
        if dev in home and typ in ALERT_TYPES:
            n = sum(int(row[1] or 0) for row in s.get("values", []))
            per_dev.setdefault(dev, {})[typ] = per_dev.get(dev, {}).get(typ, 0) + n
    cells: dict[Cell, int] = {}
    for dev, counts in per_dev.items():
        left = max_alerts
        for typ in ALERT_TYPES:
            n = min(counts.get(typ, 0), left)
            left -= n
            if n:
                key = (home[dev][1], typ)
                cells[key] = cells.get(key, 0) + n
    return residents, cells


def noisy_table(
    sites: list[str], residents: dict[str, int], alerts: dict[Cell, int], policy: DpPolicy
) -> dict[Cell, int]:
    """The released table: noisy district cells (>= 0), the city and totals as sums."""
    m_res, m_alerts = policy.measurements()
    res = m_res([residents.get(s, 0) for s in sites]) if sites else []
    cells = [(s, t) for s in sites for t in ALERT_TYPES]
    al = m_alerts([alerts.get(c, 0) for c in cells]) if cells else []
    out: dict[Cell, int] = {}
    for s, v in zip(sites, res, strict=True):
        out[(s, RESIDENTS)] = max(0, int(v))
    for c, v in zip(cells, al, strict=True):
        out[c] = max(0, int(v))
    for s in sites:
        out[(s, TOTAL)] = sum(out[(s, t)] for t in ALERT_TYPES)
    for col in (RESIDENTS, *ALERT_TYPES, TOTAL):
        out[(CITY, col)] = sum(out[(s, col)] for s in sites)
    return out


class DpRelease:
    """Releases each tile once and serves the kept figures (``CARE_DP`` in InfluxDB)."""

    def __init__(
        self,
        influx: InfluxV1,
        policy: DpPolicy,
        sites: Callable[[], list[str]],
    ) -> None:
        self.influx = influx
        self.policy = policy
        self.sites = sites
        self._lock = threading.Lock()
        self.released = 0

    def ready_at(self, end: datetime) -> datetime:
        return end + timedelta(seconds=self.policy.settle_s)

    def stored(self, start: datetime) -> dict[Cell, int] | None:
        rows = self.influx.rows(
            f"SELECT * FROM {quote_ident(CARE_DP)} WHERE time = {ts(start)} GROUP BY site"
        )
        skip = {"time", "site", "epsilon", "max_alerts"}
        out = {
            (r["site"], c): int(v)
            for r in rows
            for c, v in r.items()
            if c not in skip and v is not None
        }
        return out or None

    def values(self, start: datetime, end: datetime, now: datetime) -> dict[Cell, int] | None:
        """The tile's released table, releasing it now if it has settled; None before."""
        kept = self.stored(start)
        if kept is not None or now < self.ready_at(end):
            return kept
        with self._lock:
            kept = self.stored(start)  # another thread released it meanwhile
            if kept is not None:
                return kept
            self._release(start, end)
            return self.stored(start)

    def _release(self, start: datetime, end: datetime) -> None:
        tw = f"time >= {ts(start)} AND time < {ts(end)}"
        readings, alerts = self.influx.query_many(
            [
                f"SELECT LAST(seq) FROM wearable WHERE {tw} GROUP BY device_id, site",
                f"SELECT COUNT(episode_ms) FROM {CARE_ALERT} WHERE {tw} AND state = 'open' "
                'GROUP BY device_id, site, "type"',
            ]
        )
        residents, cells = assign(readings, alerts, self.policy.max_alerts)
        sites = sorted(set(self.sites()) | set(residents))
        table = noisy_table(sites, residents, cells, self.policy)
        ms = int(start.timestamp() * 1000)
        meta = {"epsilon": float(self.policy.epsilon), "max_alerts": self.policy.max_alerts}
        rows = [*sites, CITY]
        body = "\n".join(
            line(
                CARE_DP,
                {"site": r},
                {**{c: v for (rr, c), v in table.items() if rr == r}, **meta},
                ms,
            )
            for r in rows
        )
        resp = self.influx.write_lines(body.encode())
        if resp.status_code != 204:
            raise InfluxError(
                resp.status_code,
                f"InfluxDB refused the private care release of {start}: {resp.text}",
            )
        self.released += 1
