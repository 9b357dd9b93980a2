"""Run every panel query of every board against a live InfluxDB, as Grafana would.

``machi dashboards verify`` uses it after a deployment (do the dashboards show data?);
the tests use it against a real influxd filled with demo data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract.influx import InfluxError, InfluxV1
from contract.rules import ROLLUP_RP
from dashboards.boards import BOARDS, Board
from dashboards.export import board_json
from dashboards.macros import Context, expand


@dataclass(frozen=True)
class PanelResult:
    board: str
    panel: str
    ref_id: str
    query: str
    rows: int
    error: str | None = None


def iter_targets(data: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, raw query) for every target of a dashboard's JSON."""
    for panel in data.get("panels", []):
        for target in panel.get("targets", []):
            yield panel.get("title", "?"), target.get("refId", "A"), target["query"]


def variable_queries(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, query) of the dashboard's query variables, in dashboard order."""
    return [
        (v["name"], v["query"])
        for v in data.get("templating", {}).get("list", [])
        if v.get("type", "query") == "query"
    ]


def resolve_all(
    client: InfluxV1, data: Mapping[str, Any], from_ms: int, to_ms: int
) -> dict[str, list[str]]:
    """Every variable set to "All": the values its own query returns, in order, so that
    a later variable's query (route filtered by site) sees the earlier selection."""
    selected: dict[str, list[str]] = {}
    for name, query in variable_queries(data):
        ctx = Context(from_ms, to_ms, selected)
        values = [str(r["value"]) for r in client.rows(expand(query, ctx))]
        selected[name] = values
    return selected


def count_rows(series: Sequence[Mapping[str, Any]]) -> int:
    """Rows that carry at least one non-null value besides time (what a panel can draw)."""
    n = 0
    for s in series:
        for row in s.get("values", []):
            if any(v is not None for v in row[1:]):
                n += 1
    return n


_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


def default_range(data: Mapping[str, Any], now_ms: int) -> tuple[int, int]:
    """The board's own default time range (``now-24h`` .. ``now``), in ms."""
    spec = str(data.get("time", {}).get("from", "now-24h"))
    n, unit = spec.removeprefix("now-")[:-1], spec[-1]
    return now_ms - int(float(n) * _UNITS_MS[unit]), now_ms


def run_board(
    client: InfluxV1,
    board: Board,
    from_ms: int | None = None,
    to_ms: int | None = None,
    variables: Mapping[str, Sequence[str]] | None = None,
) -> list[PanelResult]:
    """Run one board's queries over ``[from_ms, to_ms]`` (default: the board's own default
    range, e.g. 7 days for the daily care figures); ``variables`` overrides the "All"
    selection per name."""
    data = board_json(board)
    if from_ms is None or to_ms is None:
        from_ms, to_ms = default_range(data, int(time.time() * 1000))
    selected: dict[str, Sequence[str]] = dict(resolve_all(client, data, from_ms, to_ms))
    selected.update(variables or {})
    ctx = Context(from_ms, to_ms, selected)
    out = []
    for panel, ref_id, raw in iter_targets(data):
        query = expand(raw, ctx)
        try:
            rows, error = count_rows(client.query(query)), None
        except InfluxError as exc:
            rows, error = 0, exc.message
            if ROLLUP_RP in error:
                error += " (the green panels read the API's rollups: run `machi api setup-rollups`)"
        out.append(PanelResult(board.uid, panel, ref_id, query, rows, error))
    return out


def run_all(
    client: InfluxV1, from_ms: int | None = None, to_ms: int | None = None
) -> list[PanelResult]:
    return [r for b in BOARDS for r in run_board(client, b, from_ms, to_ms)]
