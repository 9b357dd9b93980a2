"""Green rollups: idempotent CQ setup, and KPIs from rollups equal KPIs from raw points.

The CQ scheduler runs once a minute, too slow for these tests, so they run the CQs'
own SELECT ... INTO statements on demand (``api.rollups.run``) for the data's range.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from api import rollups
from api.config import KpiConfig
from api.kpis import KpiEngine, Window
from contract.influx import InfluxV1, quote_ident
from tests.api.test_kpis import T0, _meter, _write, city  # noqa: F401 -- city is a fixture

pytestmark = pytest.mark.integration

GREEN = ("energy_consumption_kwh", "peak_demand_kw", "pv_export_kwh", "meters_reporting_pct")


def _green(engine: KpiEngine, w: Window) -> dict[str, float | None]:
    return {k.id: k.value for k in engine.theme("green", w).kpis if k.id in GREEN}


def _engines(influx: InfluxV1) -> tuple[KpiEngine, KpiEngine]:
    cfg = KpiConfig(emission_factor_t_per_kwh=0.0005)
    return KpiEngine(influx, cfg, use_rollups=False), KpiEngine(influx, cfg)


def test_setup_is_idempotent_and_replaces_outdated_cqs(influx: InfluxV1) -> None:
    done = rollups.setup(influx)
    assert f"created retention policy {rollups.RP}" in done
    assert sum(d.startswith("created continuous query") for d in done) == 3
    assert rollups.setup(influx) == []  # CREATE CONTINUOUS QUERY would fail if re-run
    assert rollups.installed(influx)
    # A CQ left by an older version (same name, other text) is dropped and recreated.
    name = rollups.CQ_PREFIX + "site"
    influx.execute(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(influx.db)}")
    influx.execute(
        f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(influx.db)} BEGIN "
        f"SELECT MAX(imp_kwh) AS imp_kwh INTO {quote_ident(rollups.RP)}.energy_site "
        f"FROM {quote_ident(rollups.RP)}.energy_meter GROUP BY time(5m), site END"
    )
    assert rollups.setup(influx) == [
        f"dropped outdated continuous query {name}",
        f"created continuous query {name}",
    ]
    assert "sum(imp_kwh)" in rollups.existing_cqs(influx)[name].lower()
    # CQs that ran every minute (before the 5-minute schedule) are replaced too.
    assert len(rollups.setup(influx, every=timedelta(minutes=1))) == 6
    assert len(rollups.setup(influx)) == 6
    assert all("RESAMPLE EVERY 5m FOR 1h" in text for text in rollups.existing_cqs(influx).values())
    assert rollups.setup(influx) == []


@pytest.mark.parametrize("site", [None, "a", "b"])
@pytest.mark.parametrize(
    ("start_min", "end_min"),
    [(0, 120), (3, 118), (-10, 60), (35, 95)],  # aligned, unaligned, partial, mid-gap
)
def test_rollup_kpis_equal_raw_kpis(
    city: KpiEngine,  # noqa: F811
    influx: InfluxV1,
    site: str | None,
    start_min: int,
    end_min: int,
) -> None:
    rollups.setup(influx)
    assert rollups.run(influx, T0 - timedelta(hours=1), T0 + timedelta(hours=3)) > 0
    raw, rolled = _engines(influx)
    w = Window(T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min), site)
    assert rolled.green_plan(w).uses_rollup
    assert not raw.green_plan(w).uses_rollup
    expected = _green(raw, w)
    assert _green(rolled, w) == pytest.approx(expected)
    # A frontier inside the window: rollup up to it, raw tail after it, same answers.
    for frontier_min in (30, 47, 100):
        rolled.clock = lambda m=frontier_min: T0 + timedelta(minutes=m) + rollups.LAG
        assert _green(rolled, w) == pytest.approx(expected), frontier_min


def test_known_answer_from_rollups_and_late_data(
    city: KpiEngine,  # noqa: F811
    influx: InfluxV1,
) -> None:
    rollups.setup(influx)
    rollups.run(influx, T0 - timedelta(hours=1), T0 + timedelta(hours=3))
    _, rolled = _engines(influx)
    w = Window(T0, T0 + timedelta(hours=2))
    assert rolled.green_plan(w).uses_rollup
    v = _green(rolled, w)
    assert v["energy_consumption_kwh"] == pytest.approx(14.0)
    assert v["peak_demand_kw"] == pytest.approx(14.0)
    assert v["pv_export_kwh"] == pytest.approx(2.0)
    assert v["meters_reporting_pct"] == pytest.approx(75.0)
    # A meter whose readings arrive late: the rollup lacks them until the interval is
    # recomputed (the CQs do it for an hour; here we re-run the same statements).
    _write(influx, [_meter("m5", "b", 12, 10.0), _meter("m5", "b", 22, 12.5)])
    assert _green(rolled, w)["energy_consumption_kwh"] == pytest.approx(14.0)
    rollups.run(influx, T0, T0 + timedelta(hours=1))
    assert _green(rolled, w)["energy_consumption_kwh"] == pytest.approx(16.5)
    raw, _ = _engines(influx)
    assert _green(raw, w) == pytest.approx(_green(rolled, w))


def test_rollup_not_used_before_its_first_interval(influx: InfluxV1) -> None:
    lines = [_meter("m1", "a", minute, 100.0 + minute / 10) for minute in range(0, 240, 10)]
    _write(influx, lines)
    rollups.setup(influx)
    rollups.run(influx, T0 + timedelta(hours=2), T0 + timedelta(hours=4))
    raw, rolled = _engines(influx)
    early = Window(T0, T0 + timedelta(hours=4))  # starts before the rollup's coverage
    assert not rolled.green_plan(early).uses_rollup
    late = Window(T0 + timedelta(hours=2), T0 + timedelta(hours=4))
    assert rolled.green_plan(late).uses_rollup
    assert _green(rolled, late) == pytest.approx(_green(raw, late))
    # 1 kWh per 10 min: the readings at 2:10 .. 3:50 (the one at 2:00 closes the
    # interval before the window).
    assert _green(rolled, late)["energy_consumption_kwh"] == pytest.approx(11.0)
    assert _green(rolled, early)["energy_consumption_kwh"] == pytest.approx(23.0)


def test_continuous_queries_really_roll_up(influx: InfluxV1) -> None:
    """The installed CQs (not just their statements) fill the rollup within ~1 minute.

    Installed to run every minute: the real schedule (every 5 min) would make this test
    wait up to 5 minutes; the statements are the same.
    """
    import time

    now = datetime.now(tz=T0.tzinfo)
    base = rollups.floor_grid(now) - timedelta(minutes=20)
    minutes = [(base - T0).total_seconds() / 60 + m for m in range(0, 20, 2)]
    _write(influx, [_meter("m1", "a", m, 50.0 + i) for i, m in enumerate(minutes)])
    rollups.setup(influx, every=timedelta(minutes=1))
    q = (
        f"SELECT SUM(imp_kwh) FROM {quote_ident(rollups.RP)}.energy_site "
        f"WHERE time >= {rollups.ts(base)} AND time < {rollups.ts(base + timedelta(minutes=15))}"
    )
    deadline = time.monotonic() + 150
    total = None
    while time.monotonic() < deadline:
        series = influx.query(q)
        total = series[0]["values"][0][1] if series else None
        # Readings 50..57 at 0, 2, ..., 14 min; intervals (b, b + 5 min]: the one at 0
        # closes the interval before; (0, 5] ends at 52 (+2 over 50), (5, 10] at 55 (+3),
        # (10, 15] at 57 (+2).
        if total == pytest.approx(7.0):
            break
        time.sleep(2)
    assert total == pytest.approx(7.0)


def test_cli_setup_rollups_is_idempotent(influx: InfluxV1) -> None:
    import subprocess
    import sys

    _write(influx, [_meter("m1", "a", 0, 1.0)])
    argv = [sys.executable, "-m", "machi.cli", "api", "--influx-url", influx.url]
    argv += ["--influx-db", influx.db, "setup-rollups", "--backfill-hours", "1"]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "created continuous query machi_green_site" in first.stdout
    assert "rolled up the last 1 h" in first.stdout
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert rollups.installed(influx)


def test_rollups_of_the_old_grid_are_dropped_on_upgrade(
    city: KpiEngine,  # noqa: F811
    influx: InfluxV1,
) -> None:
    # The pre-2026-12 meter CQ (left-closed grid, resets dropped) and its points.
    rollups.setup(influx)
    name = rollups.CQ_PREFIX + "meter_steps"
    influx.execute(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(influx.db)}")
    d = quote_ident(influx.db)
    influx.execute(
        f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {d} BEGIN SELECT "
        "NON_NEGATIVE_DIFFERENCE(LAST(energy_import_kwh)) AS imp_kwh INTO "
        f"{d}.{quote_ident(rollups.RP)}.energy_meter FROM {d}..energy_meter "
        "GROUP BY time(5m), device_id, site END"
    )
    influx.execute(  # a point on the old grid (labelled b, not b + 1 ms)
        f"SELECT 99.0 * COUNT(seq) AS imp_kwh INTO {d}.{quote_ident(rollups.RP)}.energy_site "
        f"FROM {d}..energy_meter WHERE time >= {rollups.ts(T0)} "
        f"AND time < {rollups.ts(T0 + timedelta(minutes=5))} GROUP BY time(5m), site"
    )
    assert influx.query(f"SELECT * FROM {quote_ident(rollups.RP)}.energy_site")
    done = rollups.setup(influx)
    assert any(x.startswith("dropped the old-grid rollup points") for x in done)
    assert influx.query(f"SELECT * FROM {quote_ident(rollups.RP)}.energy_site") == []
    assert rollups.setup(influx) == []
    rollups.run(influx, T0 - timedelta(hours=1), T0 + timedelta(hours=3))
    _, rolled = _engines(influx)
    assert _green(rolled, Window(T0, T0 + timedelta(hours=2)))["energy_consumption_kwh"] == (
        pytest.approx(14.0)
    )
