"""InfluxQL for the inventory routes: sites, devices, care alerts and vehicles.

Every value that reaches a query is validated first (ids by ``contract.ids``, windows by
:class:`api.kpis.Window`, enums by FastAPI) and quoted with ``contract.influx``.
"""

# ruff: noqa: S608 -- queries are built from constants and validated, quoted values only.
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from api.kpis import Window, iso
from contract.events import CARE_ALERT
from contract.influx import InfluxV1, quote_ident, quote_str
from contract.schema import KINDS

__all__ = ["care_alerts", "devices", "sites", "vehicles"]


def sites(influx: InfluxV1) -> dict[str, set[str]]:
    """Site id -> the device kinds seen there (tag values: the index answers, no scan)."""
    series = influx.query('SHOW TAG VALUES FROM energy_meter, wearable, bus WITH KEY = "site"')
    found: dict[str, set[str]] = {}
    for s in series:
        for row in s.get("values", []):
            found.setdefault(row[1], set()).add(s["name"])
    return found


def devices(
    influx: InfluxV1, w: Window, kind: str | None, online_window_s: float
) -> list[dict[str, Any]]:
    """Devices seen in the window, with last-seen time and freshness."""
    kinds = [kind] if kind else list(KINDS)
    q = f"SELECT LAST(seq) FROM {', '.join(kinds)} WHERE {w.where()} GROUP BY device_id, site"
    now_ms = time.time() * 1000
    out = []
    for s in influx.query(q):
        tags = s.get("tags", {})
        for row in s.get("values", []):
            age = max(0.0, (now_ms - row[0]) / 1000)
            out.append(
                {
                    "device_id": tags.get("device_id", ""),
                    "kind": s["name"],
                    "site": tags.get("site") or None,
                    "last_seen": iso(datetime.fromtimestamp(row[0] / 1000, UTC)),
                    "age_s": round(age, 3),
                    "fresh": age <= online_window_s,
                }
            )
    out.sort(key=lambda d: (d["kind"], d["device_id"]))
    return out


def care_alerts(
    influx: InfluxV1, w: Window, type: str | None, state: str | None, limit: int
) -> list[dict[str, Any]]:
    """Care alert state changes in the window, newest first."""
    where = w.where()
    if type is not None:
        where += f" AND {quote_ident('type')} = {quote_str(type)}"
    if state is not None:
        where += f" AND state = {quote_str(state)}"
    q = (
        'SELECT device_id, site, "type", state, value, episode_ms '
        f"FROM {CARE_ALERT} WHERE {where} ORDER BY time DESC LIMIT {int(limit)}"
    )
    return [
        {
            "time": iso(datetime.fromtimestamp(r["time"] / 1000, UTC)),
            "device_id": r.get("device_id") or "",
            "site": r.get("site"),
            "type": r.get("type") or "",
            "state": r.get("state") or "",
            "value": r.get("value"),
            "episode_ms": r.get("episode_ms"),
        }
        for r in influx.rows(q)
    ]


def vehicles(influx: InfluxV1, w: Window) -> list[dict[str, Any]]:
    """The newest fix of every bus in the window."""
    q = (
        "SELECT lat, lon, speed_kmh, heading_deg, trip_id FROM bus "
        f"WHERE {w.where()} GROUP BY device_id, route_id ORDER BY time DESC LIMIT 1"
    )
    return [
        {
            "vehicle_id": r["device_id"],
            "route_id": r.get("route_id"),
            "trip_id": r.get("trip_id"),
            "latitude": r["lat"],
            "longitude": r["lon"],
            "speed_kmh": r.get("speed_kmh"),
            "bearing": r.get("heading_deg"),
            "timestamp": int(r["time"] // 1000),
        }
        for r in influx.rows(q)
        if r.get("lat") is not None and r.get("lon") is not None
    ]
