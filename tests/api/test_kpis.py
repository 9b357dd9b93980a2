"""KPI values against hand-computed answers on known data in a real influxd."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from api.config import KpiConfig
from api.kpis import KpiEngine, Window
from contract.influx import InfluxV1
from contract.lineprotocol import line
from contract.settings import ConfigError

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)
MIN = 60_000


def _meter(dev: str, site: str, minute: float, imp: float, exp: float | None = None) -> str:
    fields = {"power_w": 100.0, "energy_import_kwh": imp, "energy_export_kwh": exp, "seq": 1}
    return line("energy_meter", {"device_id": dev, "site": site}, fields, MS0 + int(minute * MIN))


def _write(influx: InfluxV1, lines: list[str]) -> None:
    r = influx.write_lines("\n".join(lines).encode())
    assert r.status_code == 204, r.text


@pytest.fixture
def city(influx: InfluxV1) -> KpiEngine:
    lines = [
        # m1: a counter reset at 30 min and a gap from 40 to 90 min; one point before start.
        _meter("m1", "a", -10, 99.0, 9.0),
        _meter("m1", "a", 0, 100.0, 10.0),
        _meter("m1", "a", 10, 101.0),
        _meter("m1", "a", 20, 103.0),
        _meter("m1", "a", 30, 0.5),
        _meter("m1", "a", 40, 1.5),
        _meter("m1", "a", 60, None, 12.0),
        _meter("m1", "a", 90, 4.5),
        _meter("m2", "b", 0, 50.0),
        _meter("m2", "b", 30, 52.0),
        _meter("m2", "b", 60, 55.0),
        _meter("m3", "b", 0, 0.0),
        _meter("m3", "b", 30, 1.5),
        _meter("m4", "a", -24 * 60, 7.0),  # known, but silent in the window
    ]
    for i in range(7):
        site = "a" if i < 5 else "b"
        lines.append(
            line(
                "wearable",
                {"device_id": f"w{i}", "site": site},
                {"heart_rate_bpm": 70.0, "seq": 1},
                MS0 + 5 * MIN,
            )
        )
    lines.append(
        line(
            "wearable", {"device_id": "w9", "site": "a"}, {"steps": 1, "seq": 1}, MS0 - 3 * 60 * MIN
        )
    )
    lines.append(
        line("wearable", {"device_id": "w0", "site": "a"}, {"steps": 2, "seq": 2}, MS0 + 117 * MIN)
    )
    alerts = [
        ("w1", "a", "hr_high", "open", 5),
        ("w1", "a", "hr_high", "closed", 10),
        ("w2", "a", "fall", "open", 6),
        ("w5", "b", "hr_high", "open", 7),
        ("w3", "a", "spo2_low", "open", -30),  # before the window
    ]
    for dev, site, typ, state, minute in alerts:
        lines.append(
            line(
                "care_alert",
                {"device_id": dev, "site": site, "type": typ},
                {"state": state, "value": 1.0, "episode_ms": MS0},
                MS0 + minute * MIN,
            )
        )
    arrivals = [
        ("s1", 0, -90.0),
        ("s1", 10, -60.0),
        ("s1", 30, 0.0),
        ("s2", 0, 300.0),
        ("s2", 10, 301.0),
        ("s2", 20, 30.0),
    ]
    previous: dict[str, int] = {}
    for i, (stop, minute, delay) in enumerate(arrivals):
        # headway_s as the events worker writes it: the gap from the route's previous
        # arrival at the stop (none for the first).
        fields: dict[str, float | str] = {"delay_s": delay, "trip_id": "t1", "scheduled_ms": 0}
        if stop in previous:
            fields["headway_s"] = (minute - previous[stop]) * 60.0
        previous[stop] = minute
        lines.append(
            line(
                "bus_arrival",
                {"device_id": f"b{i % 2}", "route_id": "r1", "site": "a", "stop_id": stop},
                fields,
                MS0 + minute * MIN,
            )
        )
    for dev, minute, speed in (("b1", 1, 20.0), ("b1", 116, 40.0), ("b2", 2, 30.0)):
        lines.append(
            line(
                "bus",
                {"device_id": dev, "site": "a", "route_id": "r1"},
                {"lat": 34.0, "lon": 133.0, "speed_kmh": speed, "seq": 1},
                MS0 + minute * MIN,
            )
        )
    for worker, minute, rejected, lag in (
        ("w1", 0, 0, 3.0),
        ("w1", 10, 5, 2.0),
        ("w1", 20, 2, 9.0),
        ("w1", 30, 4, 1.5),
        ("w2", 0, 10, 0.1),
        ("w2", 10, 11, 0.5),
    ):
        lines.append(
            line(
                "ingest_stats",
                {"worker": worker},
                {"messages": 1, "readings": 1, "rejected": rejected, "lag_s": lag, "pending": 0},
                MS0 + minute * MIN,
            )
        )
    _write(influx, lines)
    return KpiEngine(influx, KpiConfig(emission_factor_t_per_kwh=0.0005))


def _values(engine: KpiEngine, theme: str, site: str | None = None) -> dict[str, float | None]:
    w = Window(T0, T0 + timedelta(hours=2), site)
    return {k.id: k.value for k in engine.theme(theme, w).kpis}


def _kpi(engine: KpiEngine, theme: str, w: Window) -> dict[str, float | None]:
    return {k.id: k.value for k in engine.theme(theme, w).kpis}


def test_green_counters_with_reset_gap_and_boundary(city: KpiEngine, influx: InfluxV1) -> None:
    v = _values(city, "green")
    # Right-closed 5-minute intervals (b, b + 5 min], each step measured from the meter's
    # previous reading (up to 1 h back, so also from before the window). A reading on a
    # boundary closes the interval before it: m1's 99 -> 100 at 0 min belongs to the
    # interval ending at 0, before the window. m1: 1 + 2 + 0.5 (reset 103 -> 0.5: the new
    # counter's 0.5 is kept, Prometheus increase()) + 1 + 3 (across the 40-90 min gap) =
    # 7.5; m2: 5; m3: 1.5.
    assert v["energy_consumption_kwh"] == pytest.approx(14.0)
    assert v["co2_emissions_t"] == pytest.approx(14.0 * 0.0005)
    # Energy per 30-minute slot / 0.5 h: slot 0 = m1 1 + 2 + 0.5 (its reading at 30 min
    # closes slot 0) + m2 2 + m3 1.5 = 7 kWh -> 14 kW; slot 30 = m1 1 + m2 3 -> 8 kW;
    # slot 60 = m1's post-gap 3 kWh -> 6 kW (it lands in the interval of the new reading).
    assert v["peak_demand_kw"] == pytest.approx(14.0)
    assert v["pv_export_kwh"] == pytest.approx(2.0)  # m1: (9 -> 10 before) -> (gap) 12
    assert v["meters_reporting_pct"] == pytest.approx(75.0)
    # Late data (arrives after the fact, between 40 and 90 min) leaves the total unchanged
    # for a monotonic counter.
    _write(influx, [_meter("m1", "a", 50, 2.0)])
    assert _values(city, "green")["energy_consumption_kwh"] == pytest.approx(14.0)


def test_green_site_filter(city: KpiEngine) -> None:
    v = _values(city, "green", "b")
    assert v["energy_consumption_kwh"] == pytest.approx(6.5)
    assert v["peak_demand_kw"] == pytest.approx(7.0)
    assert v["pv_export_kwh"] is None  # no export counters at site b
    assert v["meters_reporting_pct"] == pytest.approx(100.0)
    assert _values(city, "green", "a")["meters_reporting_pct"] == pytest.approx(50.0)


def _care(engine: KpiEngine, site: str | None = None, public: bool = False) -> dict:
    res = engine.theme("care", Window(T0, T0 + timedelta(hours=2), site), public=public)
    return {k.id: k for k in res.kpis}


def test_care_counts_k_threshold_and_complement(city: KpiEngine, influx: InfluxV1) -> None:
    # Care scope at k=5 (no small-count ranges, any window): the city row is published.
    city = KpiEngine(influx, KpiConfig(care_k=5))
    v = {kid: k.value for kid, k in _care(city).items()}
    assert v["residents_monitored"] == 7
    assert (v["alerts_hr_high"], v["alerts_hr_low"], v["alerts_spo2_low"], v["alerts_fall"]) == (
        2,
        0,
        0,
        1,
    )
    assert v["alerts_total"] == 3
    assert v["wearables_reporting_pct"] == pytest.approx(87.5)
    # Site b has two residents: below k=5 every care figure is withheld ...
    b = _care(city, "b")
    assert all(k.suppressed and k.value is None for k in b.values())
    assert "k=5" in (b["residents_monitored"].note or "")
    # ... and site a (5 residents, enough on its own) too: city minus a would give b.
    a = _care(city, "a")
    assert all(k.suppressed and k.value is None for k in a.values())
    assert "complementary" in (a["residents_monitored"].note or "")
    # k is configurable upwards: the city's 7 residents are withheld at k=8 ...
    strict = KpiEngine(influx, KpiConfig(care_k=8))
    assert all(k.suppressed and k.value is None for k in _care(strict).values())
    # ... and never below contract.rules.CARE_K_MIN, in the API as in the dashboards.
    with pytest.raises(ConfigError, match="minimum k of 5"):
        KpiConfig(care_k=2)
    # A public caller gets nothing for a window off the public grid (2 h here).
    off_grid = city.theme("care", Window(T0, T0 + timedelta(hours=2)))
    assert all(k.suppressed and k.value is None for k in off_grid.kpis)
    assert "fixed windows of 24 h" in " ".join(off_grid.notes)


def test_transit(city: KpiEngine) -> None:
    v = _values(city, "transit")
    assert v["on_time_performance_pct"] == pytest.approx(400 / 6, abs=1e-3)
    assert v["avg_delay_s"] == pytest.approx(481 / 6)
    assert v["active_vehicles"] == 2
    assert v["avg_speed_kmh"] == pytest.approx(30.0)
    # s1 gaps 600, 1200 -> cv sqrt(2)/3 (sample stddev); s2 gaps 600, 600 -> 0.
    assert v["headway_cv"] == pytest.approx(math.sqrt(2) / 3 / 2)
    # From 5 min on, the gaps that END in the window count: s1 600 (from 0 min, before
    # the window), 1200 -> the same cv; s2 600, 600 -> 0. One gap only (from 15 min: s1
    # 1200, s2 600): no sample stddev, no cv.
    late = Window(T0 + timedelta(minutes=5), T0 + timedelta(hours=2))
    assert _kpi(city, "transit", late)["headway_cv"] == pytest.approx(math.sqrt(2) / 3 / 2)
    later = Window(T0 + timedelta(minutes=15), T0 + timedelta(hours=2))
    assert _kpi(city, "transit", later)["headway_cv"] is None


def test_platform(city: KpiEngine) -> None:
    v = _values(city, "platform")
    assert v["devices_online"] == 2  # w0 at 117 min, b1 at 116 min
    assert v["ingest_lag_s"] == pytest.approx(1.5)
    assert v["rejected_messages"] == 8  # w1: 5 + (restart) 2; w2: 1


def test_empty_database_gives_no_data_not_errors(influx: InfluxV1) -> None:
    engine = KpiEngine(influx)
    w = Window(T0, T0 + timedelta(hours=1))
    green = {k.id: k.value for k in engine.theme("green", w).kpis}
    assert green["energy_consumption_kwh"] is None and green["meters_reporting_pct"] is None
    care = engine.theme("care", w)
    assert all(k.suppressed for k in care.kpis)


def test_window_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="before end"):
        Window(T0, T0)
    with pytest.raises(ValueError, match="site"):
        Window(T0, T0 + timedelta(hours=1), "a' OR 1=1")
