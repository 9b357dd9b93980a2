"""Small panel and variable factories so every board looks and behaves the same.

Every title is bilingual, Japanese first then English ("電力消費 / Energy consumption");
every target is a raw InfluxQL query on machi's datasource.
"""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat as sb
from grafana_foundation_sdk.builders import table as tb
from grafana_foundation_sdk.builders import timeseries as tsb
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import DATASOURCE, InfluxQL, ResultFormat


def title(ja: str, en: str) -> str:
    return f"{ja} / {en}"


def _target(query: str, alias: str | None, fmt: ResultFormat = "time_series") -> InfluxQL:
    t = InfluxQL(query).format(fmt)
    return t.alias(alias) if alias else t


_P = TypeVar("_P", tsb.Panel, sb.Panel, tb.Panel)


def _panel(
    panel: _P,
    name: str,
    query: str,
    w: int,
    h: int,
    alias: str | None = None,
    fmt: ResultFormat = "time_series",
) -> _P:
    """What every panel has: title, machi's datasource, one query, a grid size."""
    return (
        panel.title(name)
        .datasource(DATASOURCE)
        .with_target(_target(query, alias, fmt))
        .span(w)
        .height(h)
    )


def timeseries(
    name: str, query: str, unit: str, *, alias: str | None = None, w: int = 12, h: int = 8
) -> tsb.Panel:
    return (
        _panel(tsb.Panel(), name, query, w, h, alias)
        .unit(unit)
        .fill_opacity(10)
        .span_nulls(True)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )


def stat(
    name: str,
    query: str,
    unit: str,
    *,
    alias: str | None = None,
    calc: str = "lastNotNull",
    no_value: str | None = None,
    text: bool = False,
    w: int = 6,
    h: int = 5,
) -> sb.Panel:
    """``text``: the value is a string field (Grafana's stat shows only numeric fields
    unless its reduce options select the others too)."""
    reduce = cb.ReduceDataOptions().calcs([calc]).values(False)
    if text:
        reduce = reduce.fields("/.*/")
    p = (
        _panel(sb.Panel(), name, query, w, h, alias)
        .unit(unit)
        .reduce_options(reduce)
        .graph_mode(cm.BigValueGraphMode.NONE)
    )
    return p.no_value(no_value) if no_value else p


def table(name: str, query: str, *, w: int = 24, h: int = 9) -> tb.Panel:
    # show_header also creates the options object Grafana expects (not null).
    return _panel(tb.Panel(), name, query, w, h, fmt="table").show_header(True)


def tag_variable(name: str, label: str, query: str) -> db.QueryVariable:
    """A multi-value template variable with "All"; refreshed when the time range changes."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .multi(True)
        .include_all(True)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def base(uid: str, name: str, tags: list[str], description: str) -> db.Dashboard:
    """A dashboard with machi's defaults: Asia/Tokyo, last 24 h, 1 min refresh."""
    return (
        db.Dashboard(name)
        .uid(uid)
        .tags(["machi", *tags])
        .description(description)
        .timezone("Asia/Tokyo")
        .time("now-24h", "now")
        .refresh("1m")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )
