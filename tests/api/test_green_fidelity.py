"""Green KPI fidelity with exact known answers in a real influxd: 1-minute samples give
each 5-minute step its own energy (no one-sample lag), a counter reset inside a slot
keeps both counters' increase (Prometheus increase()), and meters with fixed-time
half-hour readings (B-route 0xEA/0xE2) give the 30-minute demand from those values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api import rollups
from api.config import KpiConfig
from api.kpis import KpiEngine, Window
from contract.influx import InfluxV1
from contract.lineprotocol import line

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)  # a :00 boundary
MS0 = int(T0.timestamp() * 1000)
MIN = 60_000


def _counter(dev: str, minute: float, imp: float) -> str:
    fields = {"power_w": 1.0, "energy_import_kwh": imp, "seq": 1}
    return line("energy_meter", {"device_id": dev, "site": "s"}, fields, MS0 + int(minute * MIN))


def _fixed(dev: str, minute: int, imp: float) -> str:
    fields = {"fixed_import_kwh": imp, "seq": 2}
    return line("energy_meter", {"device_id": dev, "site": "s"}, fields, MS0 + minute * MIN)


def _green(
    influx: InfluxV1, lines: list[str], hours: float = 1.0, start_min: int = 0
) -> list[dict]:
    """The green KPIs over [T0 + start_min, T0 + hours) from raw points and from the
    rollups (lines written once; pass [] to reuse them)."""
    if lines:
        assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    cfg = KpiConfig(emission_factor_t_per_kwh=0.0005)
    w = Window(T0 + timedelta(minutes=start_min), T0 + timedelta(hours=hours))
    raw = KpiEngine(influx, cfg, use_rollups=False)
    rollups.setup(influx)
    rollups.run(influx, T0 - timedelta(hours=1), T0 + timedelta(hours=hours + 1))
    rolled = KpiEngine(influx, cfg)
    assert rolled.green_plan(w).uses_rollup
    return [{k.id: k.value for k in e.theme("green", w).kpis} for e in (raw, rolled)]


def test_one_minute_samples_have_no_lag(influx: InfluxV1) -> None:
    # 1 kWh per minute in the first slot, 3 kWh per minute in the second, sampled on
    # each minute (and the reading just before the window).
    lines = [_counter("m1", -1, 999.0)]
    value = 1000.0
    for m in range(0, 61):
        lines.append(_counter("m1", m, value))
        value += 1.0 if m < 30 else 3.0
    # readings at m hold the energy up to m: slot 0 = 1000 -> 1030, slot 30 = 1030 -> 1120
    for v in _green(influx, lines):
        assert v["energy_consumption_kwh"] == pytest.approx(120.0)  # 30 + 90
        assert v["peak_demand_kw"] == pytest.approx(90.0 / 0.5)  # exactly slot 30's energy
    # The old rule (last reading of each left-closed interval) put the reading at :30
    # into slot 30 (one sample late): slot 30 = 88 + 1, its last 3 kWh in the next slot.


def test_counter_reset_in_a_slot_keeps_both_counters(influx: InfluxV1) -> None:
    # 2 kWh per minute; at minute 42 the meter is replaced: the new counter reads 0.5,
    # then counts on at 2 kWh per minute. Prometheus increase() over slot 30: the old
    # counter 1060 -> 1082 (minutes 30..41: 11 steps x 2 = 22), the new counter's 0.5 at
    # 42, then 2 per minute from 42 to 60 (18 x 2 = 36): 58.5.
    lines = []
    for m in range(0, 42):
        lines.append(_counter("m1", m, 1000.0 + 2 * m))
    for m in range(42, 61):
        lines.append(_counter("m1", m, 0.5 + 2 * (m - 42)))
    for v in _green(influx, lines):
        assert v["peak_demand_kw"] == pytest.approx(60.0 / 0.5)  # slot 0: 30 x 2
        assert v["energy_consumption_kwh"] == pytest.approx(60.0 + 58.5)
    # The old rule dropped the whole reset interval's energy (and lagged one sample).


def test_fixed_time_values_give_the_demand(influx: InfluxV1) -> None:
    # A B-route meter: fixed-time readings at :00/:30 (billing grade) next to counter
    # samples every 7 minutes that miss the boundaries; a plain meter with counters only.
    lines = [_fixed("b1", 0, 100.0), _fixed("b1", 30, 112.5), _fixed("b1", 60, 120.0)]
    for m in range(-7, 63, 7):  # -7, 0, 7, ..., 56: none on 30 or 60
        lines.append(_counter("b1", m, 100.0 + m * 0.4))  # a smooth ramp, not the truth
    for m in range(-1, 61):
        lines.append(_counter("m2", m, 50.0 + m * 0.1))  # 3 kWh per slot, on the minute
    for v in _green(influx, lines):
        # slot 0: b1 12.5 (fixed) + m2 3; slot 30: b1 7.5 + m2 3
        assert v["peak_demand_kw"] == pytest.approx((12.5 + 3.0) / 0.5)
        assert v["energy_consumption_kwh"] == pytest.approx(12.5 + 7.5 + 6.0)


def test_fixed_values_only_for_whole_slots_in_the_window(influx: InfluxV1) -> None:
    lines = [_fixed("b1", 0, 100.0), _fixed("b1", 30, 112.5), _fixed("b1", 60, 120.0)]
    lines += [_counter("b1", m, 100.0 + m * 0.4) for m in range(-5, 61, 5)]
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    engine = KpiEngine(influx, KpiConfig(), use_rollups=False)
    # A window from :10: slot 0 is partial, so b1's counter steps count there; slot 30
    # is whole: its fixed 7.5 replaces the counter's 12.
    w = Window(T0 + timedelta(minutes=10), T0 + timedelta(hours=1))
    v = {k.id: k.value for k in engine.theme("green", w).kpis}
    assert v["energy_consumption_kwh"] == pytest.approx(20 * 0.4 + 7.5)


# -- counters interpolated to the window's ends (api.interp) ----------------------------


def _at(dev: str, ms: int, imp: float) -> str:
    fields = {"power_w": 1.0, "energy_import_kwh": imp, "seq": 1}
    return line("energy_meter", {"device_id": dev, "site": "s"}, fields, ms)


def test_readings_every_7_minutes_are_interpolated(influx: InfluxV1) -> None:
    # 1 kWh/min up to the reading at :28, 3 kWh/min after it (the power changes at a
    # reading, so the linear interpolation is the truth): slot 0 = 28 + 2 x 3 = 34,
    # slot 30 = 30 x 3 = 90. Readings at -14, -7, 0, 7, ..., 63: none on :30 or :60.
    lines, value = [], 0.0
    for m in range(-14, 70, 7):
        lines.append(_counter("m1", m, value))
        value += 7.0 * (1.0 if m < 28 else 3.0)
    for v in _green(influx, lines):
        assert v["energy_consumption_kwh"] == pytest.approx(34.0 + 90.0)
        # :30 inside the window is interpolated too (api.boundaries): slot 30 is its true
        # 90 kWh (before, it was 28 -> 56 plus the end's 4/7 of 56 -> 63 = 84 + 12 = 96).
        assert v["peak_demand_kw"] == pytest.approx(90.0 / 0.5)
    for v in _green(influx, [], start_min=30):  # the slot alone: both ends interpolated
        assert v["peak_demand_kw"] == pytest.approx(90.0 / 0.5)
        assert v["energy_consumption_kwh"] == pytest.approx(90.0)
    # Without interpolation: 28 -> 56 = 84 over [:00, :60), 35 -> 56 = 63 over [:30, :60).


def test_readings_at_400_ms_past_the_minute(influx: InfluxV1) -> None:
    # Readings at m:00.4, 1 kWh/min, 3 kWh/min from the reading at 30:00.4 on: slot 30
    # = 0.4 s at 1 kWh/min + (30 min - 0.4 s) at 3 kWh/min.
    lines, value = [], 100.0
    for m in range(-2, 62):
        lines.append(_at("m1", MS0 + m * MIN + 400, value))
        value += 1.0 if m < 30 else 3.0
    slot30 = 0.4 / 60 + (30 - 0.4 / 60) * 3.0
    for v in _green(influx, lines):
        assert v["energy_consumption_kwh"] == pytest.approx(30.0 + slot30, rel=1e-9)
    for v in _green(influx, [], start_min=30):
        assert v["peak_demand_kw"] == pytest.approx(slot30 / 0.5, rel=1e-9)
    # Without interpolation: slot 30 = 29:00.4 -> 59:00.4 = 1 + 29 x 3 = 88.


def test_reset_between_two_readings_across_a_boundary(influx: InfluxV1) -> None:
    # Every 10 min at :-5, :5, ..., 1 kWh/min; replaced between :25 and :35 (the new
    # counter reads 4 at :35: the pair's increase is 4, Prometheus increase()), half of it
    # before :30. [:00, :30) = (1025 - 1000) + 2 = 27; [:30, :60) = 2 + 10 + 10 + 5 = 27.
    readings = [(-5, 995.0), (5, 1005.0), (15, 1015.0), (25, 1025.0)]
    readings += [(35, 4.0), (45, 14.0), (55, 24.0), (65, 34.0)]
    for v in _green(influx, [_counter("m1", m, c) for m, c in readings], hours=0.5):
        assert v["energy_consumption_kwh"] == pytest.approx(27.0)
    for v in _green(influx, [], start_min=30):
        assert v["energy_consumption_kwh"] == pytest.approx(27.0)
        assert v["peak_demand_kw"] == pytest.approx(27.0 / 0.5)
    for v in _green(influx, []):
        assert v["energy_consumption_kwh"] == pytest.approx(54.0)
    # Without interpolation: [:00, :30) = 995 -> 1025 = 30, [:30, :60) = 4 + 10 + 10.


def test_no_interpolation_across_a_gap_over_15_minutes(influx: InfluxV1) -> None:
    # 1 kWh/min, readings at -3, 2, 7, 12, 17, then a 35-minute gap to 52, 57, 62. :30 lies
    # in the gap: not interpolated; the gap's 35 kWh stay with the reading after it, as
    # the step rule counts them: [:30, :60) = 35 + 5 + 3 (to :60, interpolated).
    minutes = [-3, 2, 7, 12, 17, 52, 57, 62]
    for v in _green(influx, [_counter("m1", m, 100.0 + m) for m in minutes], start_min=30):
        assert v["energy_consumption_kwh"] == pytest.approx(43.0)
    for v in _green(influx, []):
        assert v["energy_consumption_kwh"] == pytest.approx(60.0)  # nothing lost
    w = Window(T0 + timedelta(minutes=30), T0 + timedelta(hours=1))
    assert KpiEngine(influx, use_rollups=False).theme("green", w).notes == [
        "1 meter(s) have a gap of over 15 min between readings at the window's start or "
        "end: not interpolated there, the gap's energy is counted in the interval of the "
        "reading after it"
    ]


def test_a_window_inside_one_interval_covers_nothing(influx: InfluxV1) -> None:
    lines = [_counter("m1", m / 2, 100.0 + m) for m in range(0, 20)]  # every 30 s
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    w = Window(T0 + timedelta(seconds=61), T0 + timedelta(seconds=239))
    v = {k.id: k.value for k in KpiEngine(influx, use_rollups=False).theme("green", w).kpis}
    assert v["energy_consumption_kwh"] is None  # no interval starts in it
