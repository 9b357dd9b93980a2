"""Every panel query of every board runs on a real influxd with demo data and returns rows,
with Grafana's macros and variables expanded as Grafana does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from api import rollups
from api.config import KpiConfig
from api.kpis import KpiEngine, Window
from contract.disclosure import CITY, COLUMNS, RESIDENTS, Policy
from contract.influx import InfluxV1
from contract.lineprotocol import line
from contract.rules import CARE_K_DEFAULT as DEFAULT_K
from dashboards import queries as q
from dashboards.boards import BOARDS
from dashboards.macros import Context, expand
from dashboards.verify import run_all, run_board
from tests.dashboards.demo_data import (
    BIG_SITE,
    DELAYS_S,
    SMALL_SITE,
    Demo,
    expected_import_kwh,
)

pytestmark = pytest.mark.integration

BOARD = {b.uid: b for b in BOARDS}


def _rows(client: InfluxV1, demo: Demo, query: str, **variables: list[str]) -> list[dict]:
    ctx = Context(
        demo.start_ms,
        demo.end_ms,
        {"site": [BIG_SITE, SMALL_SITE], "route": ["r1", "r-2"], **variables},
    )
    return client.rows(expand(query, ctx))


def test_every_panel_returns_rows_with_all_selected(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    # From the start of the demo's care tile: the care panels show one point per tile.
    results = run_all(client, min(demo.start_ms, _tile_ms(demo)), demo.end_ms)
    assert len(results) >= 40
    errors = [(r.board, r.panel, r.error) for r in results if r.error]
    assert errors == []
    empty = [(r.board, r.panel, r.query) for r in results if r.rows == 0]
    assert empty == []


@pytest.mark.parametrize("sites", [[BIG_SITE], [BIG_SITE, SMALL_SITE]])
def test_green_board_with_site_selection(demo_db: tuple[InfluxV1, Demo], sites: list[str]) -> None:
    client, demo = demo_db
    results = run_board(client, BOARD["machi-green"], demo.start_ms, demo.end_ms, {"site": sites})
    assert all(r.error is None and r.rows > 0 for r in results), results
    # The '.' of kita.1 arrives regex-escaped, as Grafana sends it.
    assert all("kita\\.1" in r.query for r in results)


def test_site_regex_escaping_excludes_lookalikes(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    # "kitaX1" would match an unescaped /^kita.1$/; escaped, the selection is exact.
    assert _rows(client, demo, q.energy_total(), site=["kitaX1"]) == []


def test_energy_total_from_the_rollup(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    rows = _rows(client, demo, q.energy_total(by_site=True))
    got = {r["site"]: r["kwh"] for r in rows}
    assert got == pytest.approx({s: expected_import_kwh(s) for s in (BIG_SITE, SMALL_SITE)})


def test_peak_demand_is_kwh_per_slot_times_two(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    rows = _rows(client, demo, q.peak_demand_30m(), site=[BIG_SITE])
    # 3 meters x 0.25 kWh per 5 min = 4.5 kWh per full 30-min slot = 9 kW.
    assert [r["peak_kw"] for r in rows] == [pytest.approx(9.0)]


def _tile_ms(demo: Demo) -> int:
    return int(
        Policy().tile(datetime.fromtimestamp(demo.start_ms / 1000, UTC))[0].timestamp() * 1000
    )


def test_care_panels_show_only_the_published_figures(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    ctx = Context(_tile_ms(demo), demo.end_ms, {"site": [BIG_SITE, SMALL_SITE, CITY]})
    rows = {r["site"]: r for r in client.rows(expand(q.care_table(), ctx))}
    # minami (3 residents) is under k = 10; kita.1 (12) goes with it, or the city minus
    # kita.1 would be minami (the group rule). The city row (15) is published: hr_high
    # 12 exactly, the 2 falls and the empty types as the range 0-9, the total 14.
    assert {s: r["residents"] for s, r in rows.items()} == {
        BIG_SITE: "-",
        SMALL_SITE: "-",
        CITY: "15",
    }
    assert all(v == "-" for s in (BIG_SITE, SMALL_SITE) for c, v in rows[s].items() if c in COLUMNS)
    assert rows[CITY]["hr_high"] == "12" and rows[CITY]["fall"] == "0-9"
    assert rows[CITY]["alerts_total"] == "14" and rows[CITY]["k"] == DEFAULT_K
    means = client.rows(expand(q.care_daily("heart_rate_bpm"), ctx))
    # Per-resident means 60..71 (kita.1) and 60..62 (minami): (786 + 183) / 15.
    assert [(r["site"], r["value"]) for r in means] == [(CITY, pytest.approx(969 / 15))]
    newest = client.rows(expand(q.care_newest(RESIDENTS), ctx))
    assert [r[RESIDENTS] for r in newest] == ["15"]


def test_on_time_performance(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    rows = _rows(client, demo, q.on_time_pct(None))
    on_time = sum(1 for d in DELAYS_S if -60 <= d <= 300)
    assert [r["on_time_pct"] for r in rows] == [pytest.approx(100 * on_time / len(DELAYS_S))]


def test_route_variable_filters(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    rows = _rows(client, demo, q.active_vehicles(), route=["r-2"])
    assert [r["vehicles"] for r in rows] == [2]
    rows = _rows(client, demo, q.active_vehicles())
    assert [r["vehicles"] for r in rows] == [4]


def test_fleet_counts(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    assert [r["online"] for r in _rows(client, demo, q.agents_online())] == [2]
    # cumulative count 0..35 per (worker, reason): 35 each, 2 workers x 2 reasons.
    assert [r["rejected"] for r in _rows(client, demo, q.rejects_total())] == [140]


def test_relative_time_filter_form(demo_db: tuple[InfluxV1, Demo]) -> None:
    # Older Grafana versions send $timeFilter as "time > now() - 6h": the queries take both.
    client, _demo = demo_db
    query = q.meters_reporting().replace("$timeFilter", "time > now() - 6h")
    assert client.rows(expand(query, Context(0, 1, {"site": [BIG_SITE]}))) == [
        {"time": 0, "meters": 3}
    ]


def test_verify_cli(
    demo_db: tuple[InfluxV1, Demo],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from machi.cli import main

    client, _demo = demo_db
    monkeypatch.setenv("MACHI_INFLUX_URL", client.url)
    monkeypatch.setenv("MACHI_INFLUX_DB", client.db)
    # Each board's own range: the care board's 7 days hold the demo's published tile.
    assert main(["dashboards", "verify", "--require-rows"]) == 0
    assert ", 0 failed" in capsys.readouterr().out
    # Over the last 5 minutes the daily care points (and the 3 h of data) are not there.
    assert main(["dashboards", "verify", "--hours", "0.08", "--require-rows"]) == 1
    # An empty database: every panel is empty, which --require-rows turns into a failure.
    empty = InfluxV1(client.url, client.db + "_empty")
    empty.create_database()
    monkeypatch.setenv("MACHI_INFLUX_DB", empty.db)
    # Without the API's rollups the green panels fail, saying what to run.
    assert main(["dashboards", "verify"]) == 1
    assert "run `machi api setup-rollups`" in capsys.readouterr().out
    rollups.setup(empty)
    assert main(["dashboards", "verify", "--require-rows"]) == 1
    assert main(["dashboards", "verify"]) == 0  # empty is not an error by default
    empty.close()


def test_alerts_board_counts_states_and_time_to_acknowledge(demo_db: tuple[InfluxV1, Demo]) -> None:
    client, demo = demo_db
    # 12 alerts: states cycle open/acked/resolved, odd ones escalated and at the big site
    assert [r["alerts"] for r in _rows(client, demo, q.alerts_in_state("open"))] == [4]
    assert [r["alerts"] for r in _rows(client, demo, q.alerts_in_state("acked"))] == [4]
    assert [r["alerts"] for r in _rows(client, demo, q.alerts_escalated())] == [6]
    by_site = {r["site"]: r for r in _rows(client, demo, q.ack_time_by_site())}
    assert by_site[BIG_SITE]["acked"] == 4 and by_site[SMALL_SITE]["acked"] == 4
    assert by_site[BIG_SITE]["p90_s"] == 110.0  # acked odd alerts 1, 5, 7, 11 -> 10 s each
    # 2 instances x cumulative failures 0..35 on mailto
    fails = _rows(client, demo, q.channel_failures())
    assert sum(r["sum"] for r in fails) == 70


def test_green_panels_equal_the_kpi_api(influx: InfluxV1) -> None:
    """Grafana's consumption, export and peak demand over a range are the API's rollup
    step rule: equal to the API's green KPIs on readings on the 5-minute boundaries,
    with a counter reset to a non-zero value (the new counter's increment counts). On
    readings off the boundaries the API also interpolates the counters to the range's
    ends (and slot boundaries), Grafana does not: they differ by exactly that."""
    t0 = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)
    ms0 = int(t0.timestamp() * 1000)
    lines = []
    for i in range(-2, 40):
        imp = 1000.0 + 0.7 * i if i < 23 else 0.3 + 0.7 * (i - 23)  # replaced before i=23
        fields = {"energy_import_kwh": imp, "energy_export_kwh": 5.0 + 0.1 * i, "seq": 1}
        lines.append(
            line("energy_meter", {"device_id": "m1", "site": "a.1"}, fields, ms0 + i * 300_000)
        )
        fields = {"energy_import_kwh": 20.0 + 0.2 * i, "seq": 1}  # every 4 min 10.4 s
        lines.append(
            line("energy_meter", {"device_id": "m2", "site": "b"}, fields, ms0 + i * 250_400 + 7)
        )
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    rollups.setup(influx)
    rollups.run(influx, t0 - timedelta(hours=1), t0 + timedelta(hours=4))
    end = t0 + timedelta(hours=2, minutes=30)
    ctx = Context(ms0, int(end.timestamp() * 1000), {"site": ["a.1", "b"]})

    def api(site: str | None) -> dict[str, float | None]:
        engine = KpiEngine(influx, KpiConfig())
        engine.clock = lambda: end + timedelta(hours=1)  # the rollup covers the window
        assert engine.green_plan(Window(t0, end)).frontier == end
        return {k.id: k.value for k in engine.theme("green", Window(t0, end, site)).kpis}

    a = api("a.1")
    per_site = {r["site"]: r["kwh"] for r in client_rows(influx, q.energy_total(by_site=True), ctx)}
    # m1: 30 steps of 0.7 and the reset's 0.3 (the old rule dropped that whole step).
    assert per_site["a.1"] == pytest.approx(0.7 * 29 + 0.3)
    assert per_site["a.1"] == pytest.approx(a["energy_consumption_kwh"])
    peaks = {r["site"]: r["peak_kw"] for r in client_rows(influx, q.peak_demand_30m(), ctx)}
    assert peaks["a.1"] == pytest.approx(a["peak_demand_kw"])
    export = {
        r["site"]: r["kwh"]
        for r in client_rows(influx, q.energy_total("energy_export_kwh", by_site=True), ctx)
    }
    assert export["a.1"] == pytest.approx(a["pv_export_kwh"])
    series = client_rows(
        influx, q.energy_per_interval(), dataclasses.replace(ctx, variables={"site": ["a.1"]})
    )
    assert sum(r["sum"] for r in series) == pytest.approx(a["energy_consumption_kwh"])
    # m2 off the boundaries: the API adds the interpolated part after the last reading
    # before the end (8764.007 s -> 9000 s of a 250.4 s pair of 0.2 kWh) and takes off
    # the part before the start (t0 - 250.393 s -> t0).
    b = api("b")
    delta_end = 0.2 * (9_000_000 - (35 * 250_400 + 7)) / 250_400
    delta_start = 0.2 * 250_393 / 250_400
    assert b["energy_consumption_kwh"] == pytest.approx(per_site["b"] + delta_end - delta_start)


def client_rows(client: InfluxV1, query: str, ctx: Context) -> list[dict]:
    return client.rows(expand(query, ctx))
