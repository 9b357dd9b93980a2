"""The shared care boards attacked as the issue's probe attacked the API: every number any
site selection and time range of their panels shows, put together, recovers no withheld
figure; and each equals the public API's answer for the same tile. Real influxd."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.care_publish import CarePublisher, publish_tile
from api.config import ApiConfig, KpiConfig
from api.disclosure_options import DisclosureOptions
from api.kpis import KpiEngine, Window
from contract.disclosure import CITY, COLUMNS
from contract.influx import InfluxV1
from contract.rules import CARE_PUBLISHED
from contract.settings import Settings
from dashboards.boards import BOARDS
from dashboards.export import board_json
from dashboards.macros import Context, expand
from dashboards.verify import iter_targets
from machi.testkit.attack import (
    MIXED_ALERTS,
    MIXED_RESIDENTS,
    check_correct,
    derivable,
    truth,
    write_city,
)
from machi.testkit.wait import wait_for

pytestmark = pytest.mark.integration

JST = timezone(timedelta(hours=9))
T0 = datetime(2024, 5, 1, tzinfo=JST).astimezone(UTC)
MS0 = int(T0.timestamp() * 1000)
DAY = 86_400_000
RESIDENTS, ALERTS = MIXED_RESIDENTS, MIXED_ALERTS


def _value(text: Any) -> Any:
    """A board cell as the attack reads it: a number, a (lo, hi) range, or None."""
    if text is None or text == "-":
        return None
    if isinstance(text, str) and "-" in text:
        lo, hi = text.split("-")
        return (int(lo), int(hi))
    return float(text)


def _board_view(influx: InfluxV1, sites: list[str]) -> dict:
    """Everything the care and overview boards show over many selections and ranges."""
    seen: dict = {}
    boards = [b for b in BOARDS if b.uid in ("machi-care", "machi-overview")]
    selections = [
        [*sites, CITY],
        *([s] for s in [*sites, CITY]),
        *map(list, itertools.combinations(sites, 2)),
    ]
    ranges = [(MS0, MS0 + DAY), (MS0 - 3 * DAY, MS0 + 4 * DAY), (MS0 + 1, MS0 + DAY)]
    for board, sel, (lo, hi) in itertools.product(boards, selections, ranges):
        ctx = Context(lo, hi, {"site": sel, "route": ["x"]})
        for _title, _ref, raw in iter_targets(board_json(board)):
            if '"care_published"' not in raw:
                continue
            for s in influx.query(expand(raw, ctx)):
                row_site = s.get("tags", {}).get("site", CITY)
                for values in s.get("values", []):
                    for col, v in zip(s["columns"], values, strict=True):
                        if col in COLUMNS:
                            cell = (row_site, col)
                        elif col == "value" and "alerts_total" in raw:
                            cell = (row_site, "alerts_total")
                        else:
                            continue
                        seen.setdefault(cell, set()).add(_value(v) if v is not None else None)
    # One published version per cell; what was never shown counts as withheld.
    out: dict = {}
    for row in [*sites, CITY]:
        for col in COLUMNS:
            shown = {v for v in seen.get((row, col), {None}) if v is not None}
            assert len(shown) <= 1, (row, col, shown)
            out[(row, col)] = next(iter(shown)) if shown else None
    return out


def test_board_figures_recover_nothing_and_equal_the_api(influx: InfluxV1) -> None:
    write_city(influx, RESIDENTS, ALERTS, MS0)
    engine = KpiEngine(influx, KpiConfig())
    tile = engine.policy.tile(T0)
    assert publish_tile(engine, *tile)
    sites = sorted(RESIDENTS)
    board = _board_view(influx, sites)
    check_correct(board, truth(RESIDENTS, ALERTS))
    assert not derivable(board, sites)
    # taga (4) is withheld and so is yama (11): city minus the rest would be taga.
    assert board[("taga", "residents")] is None and board[("yama", "residents")] is None
    assert board[("hama", "residents")] == 40 and board[(CITY, "hr_high")] == 71
    # Exactly the public API's figures for the tile, cell by cell.
    for row in [*sites, CITY]:
        api = engine.care(Window(*tile, None if row == CITY else row)).as_dict()
        for k in api["kpis"][: len(COLUMNS)]:
            col = COLUMNS[api["kpis"].index(k)]
            want = tuple(k["range"]) if k.get("range") else k["value"]
            assert board[(row, col)] == want, (row, col)


def test_a_rewritten_tile_keeps_no_figure_withheld_now(influx: InfluxV1) -> None:
    residents = {"hama": 40, "kuji": 12, "yama": 11}
    write_city(influx, residents, {("yama", "hr_high"): 13}, MS0)
    engine = KpiEngine(influx, KpiConfig(), care_table_ttl_s=0)
    tile = engine.policy.tile(T0)
    assert publish_tile(engine, *tile)
    q = f"SELECT * FROM {CARE_PUBLISHED} WHERE \"site\" = 'yama'"
    assert influx.rows(q)[0]["hr_high"] == 13
    assert not publish_tile(engine, *tile)  # nothing changed: nothing written
    # Late data: a small district appears; the group rule now withholds yama (the
    # smallest published one), and its old numbers must be gone, not merged.
    write_city(influx, {"nishi": 3}, {}, MS0)
    assert publish_tile(engine, *tile)
    (yama,) = influx.rows(q)
    assert yama["hr_high"] is None and yama["residents"] is None
    assert yama["hr_high_shown"] == "-" and yama["residents_shown"] == "-"
    rows = influx.rows(f"SELECT residents_shown FROM {CARE_PUBLISHED} GROUP BY site")
    assert {r["site"] for r in rows} == {"hama", "kuji", "yama", "nishi", CITY}


def test_the_api_process_publishes_the_newest_complete_tiles(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    engine = KpiEngine(influx, KpiConfig())
    last = engine.policy.last_tile(datetime.now(UTC))
    newest = int(last[0].timestamp() * 1000)
    write_city(
        influx, {"hama": 12, "kuji": 11}, {("hama", "fall"): 10}, int(last[0].timestamp() * 1000)
    )
    cfg = ApiConfig(keys="k-0123456789abcdef:operator", audit_log=tmp_path / "a.jsonl", refresh_s=0)
    opts = DisclosureOptions(care_publish_s=1, care_publish_tiles=2)
    with TestClient(create_app(settings, cfg, KpiConfig(), disclosure=opts)) as client:
        publisher = client.app.state.api.care_publisher  # type: ignore[attr-defined]
        assert isinstance(publisher, CarePublisher)
        assert publisher.due()[-1] == last and len(publisher.due()) == 2

        def newest_rows() -> list[dict]:
            rows = influx.rows(f"SELECT * FROM {CARE_PUBLISHED} GROUP BY site")
            return [r for r in rows if r["time"] == newest]

        wait_for(newest_rows, timeout=30, what="the care publisher's points of the newest tile")
        rows = influx.rows(f"SELECT * FROM {CARE_PUBLISHED} GROUP BY site")
        # Operators see the loop's health on /metrics (a stale board fails no request).
        wait_for(lambda: publisher.rounds >= 1, what="the publisher's first round")
        text = client.get("/metrics").text
        assert 'machi_api_background_rounds_total{loop="care-publisher"}' in text
        assert 'machi_api_background_failures_total{loop="care-publisher"} 0.0' in text
        assert 'machi_api_background_last_round_seconds{loop="care-publisher"}' in text
    got = {r["site"]: r["residents"] for r in rows if r["time"] == newest}
    assert got == {"hama": 12, "kuji": 11, CITY: 23}
    # The tile before it had nobody: only the city row, withheld (0 < k).
    older = [(r["site"], r["residents_shown"]) for r in rows if r["time"] != newest]
    assert older == [(CITY, "-")]


def test_the_publisher_survives_an_unreachable_influxdb() -> None:
    down = InfluxV1("http://127.0.0.1:9", "city", timeout=0.5)
    publisher = CarePublisher(KpiEngine(down, KpiConfig()), interval_s=0.05, tiles=1)
    publisher.start()
    try:
        wait_for(lambda: publisher.failures >= 2, timeout=15, what="two failed rounds")
        assert publisher._thread is not None and publisher._thread.is_alive()
        assert publisher.rounds == 0
    finally:
        publisher.stop()
