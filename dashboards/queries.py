"""The InfluxQL behind every panel, written against contract v1's InfluxDB schema.

Queries use Grafana's InfluxDB macros: ``$timeFilter``, ``$__interval`` and the
template variables ``$site`` / ``$route`` (multi-value, so Grafana regex-escapes them
and joins them as ``(a|b)``). InfluxQL has no HAVING and no JOIN; the recurring tricks are:

* per-device first, then across devices: an inner query ``GROUP BY "device_id"`` and an
  outer aggregate, so a meter with many readings does not weigh more than one with few;
* care figures come only from the API's protected points (``CARE_PUBLISHED``), never
  from raw care data;
* a ratio of two counts through two raw sub-selects in one FROM, summed per interval.
"""

# ruff: noqa: S608
# S608 (SQL built from strings) is the point of this module: every piece is a constant of
# this file or a contract field name passed through quote_ident; no user input reaches it
# (the only runtime values, the template variables, are expanded by Grafana itself).

from __future__ import annotations

from contract.disclosure import CITY, COLUMNS
from contract.influx import quote_ident, quote_str
from contract.rules import (
    CARE_PUBLISHED,
    ON_TIME_EARLY_S,
    ON_TIME_LATE_S,
    ROLLUP_FIELDS,
    ROLLUP_RP,
    ROLLUP_SITE,
)

SITE = '"site" =~ /^$site$/'
ROUTE = '"route_id" =~ /^$route$/'
TF = "$timeFilter"
IV = "time($__interval)"

#: On-time window for bus arrivals, seconds (early, late), inclusive; see docs/kpis.md.
ON_TIME_WINDOW = (-ON_TIME_EARLY_S, ON_TIME_LATE_S)


def _per_interval(select: str, measurement: str, tag: str, where: str = "") -> str:
    """``select`` from ``measurement`` per Grafana interval and ``tag``; empty intervals
    stay gaps (``fill(none)``) rather than zeros."""
    cond = f"{TF} AND {where}" if where else TF
    return (
        f"SELECT {select} FROM {quote_ident(measurement)} WHERE {cond} "
        f"GROUP BY {IV}, {quote_ident(tag)} fill(none)"
    )


# --- template variables -------------------------------------------------------------


def site_values(measurement: str | None = None) -> str:
    """Sites of ``measurement``, or of the meters and buses (not every measurement: the
    care publisher's city row is ``*``, and shared boards list no sites from raw care
    data)."""
    names = [measurement] if measurement else ["energy_meter", "bus"]
    return f'SHOW TAG VALUES FROM {", ".join(map(quote_ident, names))} WITH KEY = "site"'


def route_values() -> str:
    return f'SHOW TAG VALUES FROM "bus" WITH KEY = "route_id" WHERE {SITE}'


# --- green: energy ------------------------------------------------------------------


def _rollup(field: str) -> tuple[str, str]:
    """The site rollup measurement and the field holding ``field``'s 5-minute energy."""
    if field not in ROLLUP_FIELDS:
        raise ValueError(f"{field!r} has no rollup; use one of {', '.join(ROLLUP_FIELDS)}")
    source = f"{quote_ident(ROLLUP_RP)}.{quote_ident(ROLLUP_SITE)}"
    return source, quote_ident(ROLLUP_FIELDS[field])


# Energy is read from the API's rollups (``machi_rollup.energy_site``: per site and
# right-closed 5-minute interval (b, b + 5 min], the reset-aware counter step, labelled
# b + 1 ms; docs/kpis.md "Green"), so Grafana and ``GET /v1/kpis/green`` count energy by
# the same rule. A range covers the intervals that start in it, as the API's window does
# (the API counts a last interval cut by the window's end only up to that end). The CQs
# write an interval within ~5-10 min after it ends: the newest minutes appear then.


def energy_per_interval(field: str = "energy_import_kwh") -> str:
    """kWh per Grafana interval per site (import, or export with the export register)."""
    source, col = _rollup(field)
    return f'SELECT sum({col}) FROM {source} WHERE {TF} AND {SITE} GROUP BY {IV}, "site" fill(none)'


def energy_total(field: str = "energy_import_kwh", by_site: bool = False) -> str:
    """kWh over the whole time range: the rollup's 5-minute intervals added up."""
    source, col = _rollup(field)
    group = ' GROUP BY "site"' if by_site else ""
    return f'SELECT sum({col}) AS "kwh" FROM {source} WHERE {TF} AND {SITE}{group}'


def peak_demand_30m() -> str:
    """Peak 30-minute demand in kW (Japanese demand slots): max over slots of kWh x 2.

    Counter-based only: the API also swaps in B-route fixed-time half-hour values."""
    source, col = _rollup("energy_import_kwh")
    per_slot = (
        f'SELECT sum({col}) * 2 AS "kw" FROM {source} WHERE {TF} AND {SITE} '
        'GROUP BY time(30m), "site"'
    )
    return f'SELECT max("kw") AS "peak_kw" FROM ({per_slot}) GROUP BY "site"'


def net_power_kw() -> str:
    """Net power per site in kW (mean per meter per interval, summed; < 0 = export)."""
    inner = (
        f'SELECT mean("power_w") AS "w" FROM "energy_meter" WHERE {TF} AND {SITE} '
        f'GROUP BY {IV}, "device_id", "site"'
    )
    return f'SELECT sum("w") / 1000 FROM ({inner}) WHERE {TF} GROUP BY {IV}, "site" fill(none)'


def meters_reporting() -> str:
    inner = (
        f'SELECT last("power_w") AS "p" FROM "energy_meter" WHERE {TF} AND {SITE} '
        'GROUP BY "device_id"'
    )
    return f'SELECT count("p") AS "meters" FROM ({inner})'


# --- care: the API's protected figures only ---------------------------------------
# Grafana cannot apply complementary suppression or a fixed time grid (a viewer picks any
# site subset and range), so no shared board reads raw care data: the API's care
# publisher (api/care_publish.py) writes each public tile's figures after disclosure
# control into CARE_PUBLISHED, and these queries only select those points.

_PUB = quote_ident(CARE_PUBLISHED)
_CITY_ROW = f'"site" = {quote_str(CITY)}'
#: How far back the "newest published tile" stats look (a month of daily tiles).
NEWEST = "time > now() - 32d"


def care_newest(column: str) -> str:
    """The city's figure of the newest published tile, as the text a reader may see
    ("15", a range "0-9", or "-" when withheld)."""
    shown = quote_ident(f"{column}_shown")
    return (
        f"SELECT last({shown}) AS {quote_ident(column)} FROM {_PUB} WHERE {NEWEST} AND {_CITY_ROW}"
    )


def care_daily(field: str) -> str:
    """One point per published tile and selected row (sites, and the city as ``*``):
    a number only where disclosure control published it."""
    return (
        f'SELECT {quote_ident(field)} AS "value" FROM {_PUB} WHERE {TF} AND {SITE} GROUP BY "site"'
    )


def care_table() -> str:
    """Every published cell of the selected rows per tile, as readers may see it."""
    cols = ", ".join(f"{quote_ident(c + '_shown')} AS {quote_ident(c)}" for c in COLUMNS)
    return f'SELECT {cols}, "k" FROM {_PUB} WHERE {TF} AND {SITE} GROUP BY "site"'


# --- care: per resident (restricted board only) -------------------------------------


def resident_vitals(field: str) -> str:
    return _per_interval(f"mean({quote_ident(field)})", "wearable", "device_id", SITE)


def resident_last_seen() -> str:
    return (
        'SELECT last("battery_pct") AS "battery_pct", last("seq") AS "seq" FROM "wearable" '
        f'WHERE {TF} AND {SITE} GROUP BY "device_id", "site"'
    )


def resident_alerts() -> str:
    return (
        'SELECT "state", "value", "episode_ms" FROM "care_alert" '
        f'WHERE {TF} AND {SITE} GROUP BY "device_id", "type"'
    )


# --- transit -------------------------------------------------------------------------


def on_time_pct(interval: str | None = IV) -> str:
    """Share of arrivals with delay_s in the on-time window, in percent."""
    early, late = ON_TIME_WINDOW
    cond = f"{TF} AND {ROUTE} AND {SITE}"
    on_time = (
        f'SELECT "delay_s" * 0 + 1 AS "ontime" FROM "bus_arrival" '
        f'WHERE {cond} AND "delay_s" >= {early} AND "delay_s" <= {late}'
    )
    total = f'SELECT "delay_s" * 0 + 1 AS "total" FROM "bus_arrival" WHERE {cond}'
    group = f" GROUP BY {interval} fill(none)" if interval else ""
    return (
        f'SELECT 100 * sum("ontime") / sum("total") AS "on_time_pct" '
        f"FROM ({on_time}), ({total}) WHERE {TF}{group}"
    )


def mean_delay(by_route: bool = True) -> str:
    if by_route:
        return _per_interval('mean("delay_s")', "bus_arrival", "route_id", f"{ROUTE} AND {SITE}")
    return (
        f'SELECT mean("delay_s") AS "delay_s" FROM "bus_arrival" WHERE {TF} AND {ROUTE} AND {SITE}'
    )


def active_vehicles(interval: str | None = None) -> str:
    """Distinct buses with a GPS fix (per interval, or over the whole range)."""
    group = f"{interval}, " if interval else ""
    inner = (
        f'SELECT last("lat") AS "lat" FROM "bus" WHERE {TF} AND {ROUTE} AND {SITE} '
        f'GROUP BY {group}"device_id"'
    )
    if interval:
        return (
            f'SELECT count("lat") AS "vehicles" FROM ({inner}) '
            f"WHERE {TF} GROUP BY {interval} fill(none)"
        )
    return f'SELECT count("lat") AS "vehicles" FROM ({inner})'


def mean_speed() -> str:
    return _per_interval('mean("speed_kmh")', "bus", "route_id", f"{ROUTE} AND {SITE}")


def mean_occupancy() -> str:
    return _per_interval('mean("occupancy_pct")', "bus", "route_id", f"{ROUTE} AND {SITE}")


def vehicle_positions() -> str:
    return (
        'SELECT last("lat") AS "lat", last("lon") AS "lon", last("speed_kmh") AS "speed_kmh", '
        'last("occupancy_pct") AS "occupancy_pct" FROM "bus" '
        f'WHERE {TF} AND {ROUTE} AND {SITE} GROUP BY "device_id", "route_id"'
    )


# --- fleet & ingest health -----------------------------------------------------------


def agents_online() -> str:
    inner = f'SELECT last("online") AS "online" FROM "agent_status" WHERE {TF} GROUP BY "agent_id"'
    return f'SELECT count("online") AS "online" FROM ({inner}) WHERE "online" = true'


def agents_table() -> str:
    return (
        'SELECT last("online") AS "online", last("outbox_depth") AS "outbox_depth", '
        'last("outbox_bytes") AS "outbox_bytes", last("dropped") AS "dropped", '
        'last("sources_unhealthy") AS "sources_unhealthy" FROM "agent_status" '
        f'WHERE {TF} GROUP BY "agent_id"'
    )


def outbox_depth() -> str:
    return _per_interval('max("outbox_depth")', "agent_status", "agent_id")


def devices_last_seen(measurement: str) -> str:
    """Newest reading per device: the row's time is when it was last seen."""
    return (
        f'SELECT last("seq") AS "seq" FROM {quote_ident(measurement)} '
        f'WHERE {TF} AND {SITE} GROUP BY "device_id"'
    )


def rejects_by_reason() -> str:
    # ``count`` is cumulative per worker since its start: difference it per worker, then
    # add the workers up; a worker restart resets it, and the negative step is dropped.
    inner = (
        f'SELECT non_negative_difference(last("count")) AS "n" FROM "ingest_rejects" '
        f'WHERE {TF} GROUP BY {IV}, "worker", "reason"'
    )
    return f'SELECT sum("n") FROM ({inner}) WHERE {TF} GROUP BY {IV}, "reason" fill(none)'


def rejects_total() -> str:
    inner = (
        'SELECT non_negative_difference("count") AS "n" FROM "ingest_rejects" '
        f'WHERE {TF} GROUP BY "worker", "reason"'
    )
    return f'SELECT sum("n") AS "rejected" FROM ({inner})'


def ingest_lag() -> str:
    return _per_interval('max("lag_s")', "ingest_stats", "worker")


def ingest_rate() -> str:
    return _per_interval('non_negative_derivative(last("readings"), 1s)', "ingest_stats", "worker")


def ingest_pending() -> str:
    return _per_interval('last("pending")', "ingest_stats", "worker")


# --- alerts (machi alerts run): one alert_state point per alert, alerts_stats ---------


def alerts_in_state(state: str) -> str:
    """Alerts opened in the range that are now in ``state`` (open | acked | resolved)."""
    assert state in ("open", "acked", "resolved")
    return (
        f'SELECT count("tier") AS "alerts" FROM "alert_state" WHERE {TF} AND {SITE} '
        f"AND \"state\" = '{state}'"
    )


def alerts_escalated() -> str:
    """Alerts opened in the range that went past their first tier."""
    return (
        f'SELECT count("tier") AS "alerts" FROM "alert_state" WHERE {TF} AND {SITE} '
        'AND "escalated" = true'
    )


def ack_time_by_site() -> str:
    """Time to acknowledge per site: median, 90th percentile and how many were acked."""
    return (
        'SELECT percentile("ack_s", 50) AS "p50_s", percentile("ack_s", 90) AS "p90_s", '
        f'count("ack_s") AS "acked" FROM "alert_state" WHERE {TF} AND {SITE} GROUP BY "site"'
    )


def ack_time_p90() -> str:
    return _per_interval('percentile("ack_s", 90) AS "p90_s"', "alert_state", "site", SITE)


def alerts_unresolved() -> str:
    """The alerts not resolved yet, newest first (restricted: names devices)."""
    return (
        'SELECT "alert_id", "state", "tier" FROM "alert_state" '
        f"WHERE {TF} AND {SITE} AND \"state\" != 'resolved' "
        'GROUP BY "site", "type", "priority", "device_id" ORDER BY time DESC LIMIT 50'
    )


def channel_failures() -> str:
    """Failed notification attempts per channel scheme (``failures`` is cumulative per
    alerts instance: differenced per instance, then added up)."""
    inner = (
        'SELECT non_negative_difference(last("failures")) AS "n" FROM "alerts_stats" '
        f'WHERE {TF} GROUP BY {IV}, "instance", "scheme"'
    )
    return f'SELECT sum("n") FROM ({inner}) WHERE {TF} GROUP BY {IV}, "scheme" fill(none)'
