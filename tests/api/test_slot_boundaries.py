"""Counters interpolated at every 30-minute slot boundary inside a green window, with
exact known answers in a real influxd: stored by the writer (``api.boundaries``) or
computed live (``api.inner``), resets, gaps, fixed-time meters, idempotence, catch-up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import boundaries, interp, rollups
from api.app import create_app
from api.boundary_options import BoundaryOptions
from api.boundary_writer import CATCH_UP, BoundaryWriter
from api.config import ApiConfig, KpiConfig
from api.inner import CAP
from api.kpis import KpiEngine, Window
from contract.influx import InfluxV1, quote_ident
from contract.lineprotocol import line
from contract.rules import ROLLUP_RP
from contract.settings import Settings
from machi.testkit import wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)
MIN = 60_000
SLOT = 30 * MIN


def _at(dev: str, ms: int, imp: float, site: str = "s", exp: float | None = None) -> str:
    fields = {"power_w": 1.0, "energy_import_kwh": imp, "energy_export_kwh": exp, "seq": 1}
    return line("energy_meter", {"device_id": dev, "site": site}, fields, ms)


def _write(influx: InfluxV1, lines: list[str]) -> None:
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204


def _store(influx: InfluxV1, hours: float) -> None:
    """What `machi api setup-rollups` / `rollup` do: the rollups and the boundaries."""
    rollups.setup(influx)
    rollups.run(influx, T0 - timedelta(hours=1), T0 + timedelta(hours=hours + 1))


def _engines(influx: InfluxV1) -> tuple[KpiEngine, KpiEngine]:
    """(live: raw points, nothing stored read; stored: rollups and stored boundaries)."""
    cfg = KpiConfig(emission_factor_t_per_kwh=0.0005)
    return KpiEngine(influx, cfg, use_rollups=False), KpiEngine(influx, cfg)


def _slots(engine: KpiEngine, w: Window) -> dict[int, float]:
    """Import kWh per slot, keyed by minutes after T0."""
    return {(k - MS0) // MIN: v for k, v in engine.green_slots(w).imp.items()}


class Ramp:
    """A meter whose power (kWh/min) changes only at its readings: the counter between two
    readings is linear, so linear interpolation is the truth at every boundary."""

    def __init__(self, dev: str, first_ms: int, step_ms: int, powers: list[float]) -> None:
        self.dev, self.times, self.values = dev, [], []
        t, c = first_ms, 1000.0
        for p in powers:
            self.times.append(t)
            self.values.append(c)
            c += p * step_ms / MIN
            t += step_ms
        self.powers = powers

    def lines(self, site: str = "s") -> list[str]:
        return [_at(self.dev, t, c, site) for t, c in zip(self.times, self.values, strict=True)]

    def counter(self, ms: int) -> float:
        """The true counter at ``ms`` (inside the readings' span)."""
        for i in range(len(self.times) - 1):
            t0, t1 = self.times[i], self.times[i + 1]
            if t0 <= ms <= t1:
                return self.values[i] + self.powers[i] * (ms - t0) / MIN
        raise AssertionError("outside the readings")

    def slot(self, minute: int) -> float:
        return self.counter(MS0 + (minute + 30) * MIN) - self.counter(MS0 + minute * MIN)


def _ramps() -> list[Ramp]:
    # Every 7 min at :00.4 past the minute, from before the window to after it; power
    # per reading step varying so that the slots differ (and the peak moves if a boundary
    # is not interpolated).
    step = 7 * MIN
    first = MS0 - 21 * MIN + 400
    p1 = [1.0, 1.0, 1.0, 4.0, 4.0, 0.5, 0.5, 6.0, 6.0, 1.0, 2.0, 2.0, 8.0, 8.0, 0.2]
    p1 += [0.2, 3.0, 3.0, 5.0, 1.0, 1.0, 1.0, 7.0, 7.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    p2 = [2.0, 0.1, 0.1, 3.0, 3.0, 3.0, 9.0, 0.3, 0.3, 4.0, 4.0, 1.5, 1.5, 0.0, 0.0]
    p2 += [5.0, 5.0, 2.5, 2.5, 6.0, 6.0, 0.4, 0.4, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    return [Ramp("m1", first, step, p1), Ramp("m2", first + 3 * MIN + 100, step, p2)]


HOURS = 3.0


def test_every_slot_is_the_true_slot_energy(influx: InfluxV1) -> None:
    ramps = _ramps()
    _write(influx, [ln for r in ramps for ln in r.lines()])
    _store(influx, HOURS)
    w = Window(T0, T0 + timedelta(hours=HOURS))
    truth = {m: sum(r.slot(m) for r in ramps) for m in range(0, 180, 30)}
    live, stored = _engines(influx)
    v = {k.id: k.value for k in stored.theme("green", w).kpis}
    # The peak over six slots: exact (the step rule alone moves up to a 7-minute reading
    # step's energy between slots, and the peak with it).
    assert v["peak_demand_kw"] == pytest.approx(max(truth.values()) / 0.5, rel=1e-9)
    assert v["energy_consumption_kwh"] == pytest.approx(sum(truth.values()), rel=1e-9)
    assert _slots(stored, w) == pytest.approx(truth, rel=1e-9)
    # Every slot of every sub-window of whole slots, from storage and (up to the cap of
    # live boundaries) live; with a site filter.
    for a in range(0, 180, 30):
        for b in range(a + 30, 181, 30):
            sub = Window(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b), "s")
            want = {m: truth[m] for m in range(a, b, 30)}
            assert _slots(stored, sub) == pytest.approx(want, rel=1e-9), (a, b)
            if (b - a) // 30 - 1 <= CAP:
                assert _slots(live, sub) == pytest.approx(want, rel=1e-9), (a, b)
    assert _slots(stored, Window(T0, T0 + timedelta(hours=HOURS), "other")) == {}


def test_over_the_cap_live_boundaries_are_noted(influx: InfluxV1) -> None:
    ramps = _ramps()
    _write(influx, [ln for r in ramps for ln in r.lines()])
    live, _ = _engines(influx)  # nothing stored: at most CAP boundaries live
    w = Window(T0, T0 + timedelta(hours=HOURS))
    got = live.green_slots(w)
    slots = {(k - MS0) // MIN: v for k, v in got.imp.items()}
    truth = {m: sum(r.slot(m) for r in ramps) for m in range(0, 180, 30)}
    # Boundaries 30..150: the newest four (60..150) live, 30 not: slots 0 and 30 follow
    # the step rule there, the others are exact.
    assert CAP == 4
    assert slots == pytest.approx(
        {**truth, 0: slots[0], 30: slots[30]}, rel=1e-9
    )  # slots 60..150 exact
    assert slots[0] != pytest.approx(truth[0], rel=1e-6)
    assert slots[0] + slots[30] == pytest.approx(truth[0] + truth[30], rel=1e-9)
    assert got.notes == [
        "1 30-minute slot boundary(ies) inside the window (2024-06-03T00:30:00.000Z to "
        "2024-06-03T00:30:00.000Z) are not stored: not interpolated there, their slots follow "
        "the step rule (up to a sampling period's energy in the next slot); store them with "
        "`machi api setup-rollups`, then `machi api rollup --start 2024-06-03T00:30:00.000Z "
        "--end 2024-06-03T01:00:00.000Z`"
    ]
    # With the rollup policy but no stored boundaries (the writer off, nothing back-filled):
    # the same answer, and the note's remedy is just `machi api rollup`.
    rollups.setup(influx)
    stored = KpiEngine(influx)
    assert stored.boundaries_stored()
    again = stored.green_slots(w)
    assert again.imp == pytest.approx(got.imp, rel=1e-12)
    assert again.notes == [got.notes[0].replace("`machi api setup-rollups`, then ", "")]
    # Stored after that command's back-fill: every slot exact, no note.
    rollups.run(influx, T0 + timedelta(minutes=30), T0 + timedelta(minutes=60))
    fixed = stored.green_slots(w)
    assert {(k - MS0) // MIN: v for k, v in fixed.imp.items()} == pytest.approx(truth, rel=1e-9)
    assert fixed.notes == []


def test_reset_between_two_readings_across_an_inner_boundary(influx: InfluxV1) -> None:
    # Every 10 min at :-5, :5, ..., 1 kWh/min; replaced between :25 and :35 (the new
    # counter reads 4 at :35: the pair's increase is 4, half of it before :30).
    readings = [(-5, 995.0), (5, 1005.0), (15, 1015.0), (25, 1025.0)]
    readings += [(35, 4.0), (45, 14.0), (55, 24.0), (65, 34.0)]
    _write(influx, [_at("m1", MS0 + m * MIN, c) for m, c in readings])
    _store(influx, 1)
    w = Window(T0, T0 + timedelta(hours=1))
    for engine in _engines(influx):
        assert _slots(engine, w) == pytest.approx({0: 27.0, 30: 27.0})
        assert engine.green_slots(w).notes == []


def test_a_gap_at_an_inner_boundary_is_not_interpolated(influx: InfluxV1) -> None:
    # 1 kWh/min, readings at -3, 2, 7, 12, 17, then a 35-minute gap to 52, 57, 62: :30
    # lies in the gap. Slot 0 = 2 -> 17 (15) + the start's 2/5 of -3 -> 2 = 17; slot 30 =
    # the gap's 35 (step rule: with the reading after it) + 5 + the end's 3 = 43.
    minutes = [-3, 2, 7, 12, 17, 52, 57, 62]
    _write(influx, [_at("m1", MS0 + m * MIN, 100.0 + m) for m in minutes])
    _store(influx, 1)
    w = Window(T0, T0 + timedelta(hours=1))
    for engine in _engines(influx):
        got = engine.green_slots(w)
        assert {(k - MS0) // MIN: v for k, v in got.imp.items()} == pytest.approx(
            {0: 17.0, 30: 43.0}
        )
        assert got.notes == [
            "1 time(s) a meter has a gap of over 15 min between readings at a 30-minute slot "
            "boundary inside the window: not interpolated there, the gap's energy is counted "
            "in the slot of the reading after it"
        ]


def _fixed(dev: str, minute: int, imp: float) -> str:
    fields = {"fixed_import_kwh": imp, "seq": 2}
    return line("energy_meter", {"device_id": dev, "site": "s"}, fields, MS0 + minute * MIN)


def test_fixed_time_meter_next_to_an_interpolated_counter_meter(influx: InfluxV1) -> None:
    # b1: fixed-time readings at :00/:30 (slots 12.5, 7.5, 5.0, 10.0) and counter samples
    # every 7 min on a ramp of 0.4 kWh/min that is NOT the truth (its boundary deltas must
    # leave with its swapped-out counter energy); m2 a counter meter off the boundaries.
    fixed = [100.0, 112.5, 120.0, 125.0, 135.0]
    lines = [_fixed("b1", 30 * i, f) for i, f in enumerate(fixed)]
    lines += [_at("b1", MS0 + m * MIN, 100.0 + m * 0.4) for m in range(-7, 133, 7)]
    m2 = _ramps()[1]
    lines += m2.lines()
    _write(influx, lines)
    _store(influx, 2)
    w = Window(T0, T0 + timedelta(hours=2))
    want = {
        m: f + m2.slot(m) for m, f in zip(range(0, 120, 30), (12.5, 7.5, 5.0, 10.0), strict=True)
    }
    for engine in _engines(influx):
        assert _slots(engine, w) == pytest.approx(want, rel=1e-9)
        v = {k.id: k.value for k in engine.theme("green", w).kpis}
        assert v["peak_demand_kw"] == pytest.approx(max(want.values()) / 0.5, rel=1e-9)


def _points(influx: InfluxV1) -> list[tuple[str, list[dict]]]:
    rp = f"{quote_ident(influx.db)}.{quote_ident(ROLLUP_RP)}"
    out = []
    for m in (boundaries.METER, boundaries.SITE, boundaries.MARK):
        out.append((m, influx.rows(f"SELECT * FROM {rp}.{m}")))
    return out


def test_writer_is_idempotent_and_a_late_reading_changes_the_delta(influx: InfluxV1) -> None:
    rollups.setup(influx)
    # 1 kWh/min, readings every 7 min at :00.4: at :30, the pair 28:00.4 -> 35:00.4.
    ms = [MS0 + m * MIN + 400 for m in range(-7, 70, 7)]
    _write(influx, [_at("m1", t, 100.0 + (t - MS0) / MIN, exp=5.0) for t in ms])
    lo, hi = MS0, MS0 + 2 * SLOT
    assert boundaries.fill(influx, lo, hi) == 3 * 3  # 3 boundaries x (meter, site, mark)
    first = _points(influx)
    assert boundaries.fill(influx, lo, hi) == 9
    assert _points(influx) == first  # recomputed: the same points
    at30 = {r["device_id"]: r for r in first[0][1] if r["time"] == MS0 + SLOT}
    assert at30["m1"]["imp_delta"] == pytest.approx(2.0 - 0.4 / 60)  # 28:00.4 -> 30:00
    assert at30["m1"]["exp_delta"] == 0.0
    marks = {r["time"]: (r["meters"], r["gaps"]) for r in first[2][1]}
    assert marks == {MS0: (1, 0), MS0 + SLOT: (1, 0), MS0 + 2 * SLOT: (1, 0)}
    # A late reading at 29:00.4 (the power doubled from 28:00.4): the delta at :30 is now
    # the part of 29:00.4 -> 35:00.4 up to :30.
    c29 = 100.0 + 28 + 0.4 / 60 + 2.0
    _write(influx, [_at("m1", MS0 + 29 * MIN + 400, c29, exp=5.0)])
    boundaries.fill(influx, lo, hi)
    again = {r["device_id"]: r for r in _points(influx)[0][1] if r["time"] == MS0 + SLOT}
    c35 = 100.0 + 35 + 0.4 / 60
    want = (c35 - c29) * (60_000 - 400) / (6 * MIN)
    assert again["m1"]["imp_delta"] == pytest.approx(want, rel=1e-12)
    site = {r["time"]: r for r in _points(influx)[1][1]}
    assert site[MS0 + SLOT]["imp_delta"] == pytest.approx(want, rel=1e-12)
    assert site[MS0 + SLOT]["site"] == "s"
    assert len(_points(influx)[0][1]) == 3  # rewritten, not added


def test_marker_for_a_boundary_without_meters(influx: InfluxV1) -> None:
    rollups.setup(influx)
    assert boundaries.fill(influx, MS0, MS0) == 1  # just the marker
    assert boundaries.last_mark(influx) == MS0
    # ... and the API takes such a boundary as stored (no live statements, no note).
    _, stored = _engines(influx)
    w = Window(T0 - timedelta(minutes=30), T0 + timedelta(minutes=30))
    for site in (None, "s"):  # under a site filter too (`site = ''` matches the marker)
        assert stored.green_slots(Window(w.start, w.end, site)).notes == []
        # One request, nothing live: the window's ends' two FIRST statements only.
        assert "energy_boundary_site" in stored.last_query
        assert stored.last_query.count("FIRST(energy_import_kwh)") == 2


def test_writer_catches_up_after_downtime(influx: InfluxV1) -> None:
    rollups.setup(influx)
    ramps = _ramps()
    _write(influx, [ln for r in ramps for ln in r.lines()])
    now = [(MS0 + 4 * 3600_000) / 1000]  # 04:00, data from 23:39 to 03:09
    writer = BoundaryWriter(influx, 300, clock=lambda: now[0])
    newest = MS0 + 4 * 3600_000 - boundaries.SETTLE_MS
    assert writer.due()[0] >= newest - CATCH_UP.total_seconds() * 1000  # no marker yet
    assert writer.due()[-1] == newest // SLOT * SLOT
    writer.refresh()  # 31 days up to 03:30
    assert boundaries.last_mark(influx) == MS0 + 7 * SLOT
    # Five minutes later: only the late-data hour is recomputed.
    now[0] += 300
    # 02:50 .. 04:04: 03:00 and 03:30 again (late data), 04:00 provisionally.
    assert writer.due() == [MS0 + 6 * SLOT, MS0 + 7 * SLOT, MS0 + 8 * SLOT]
    # Down for six hours: everything after the newest marker, not only the last hour.
    now[0] += 6 * 3600
    due = writer.due()
    assert due[0] == MS0 + 8 * SLOT and due[-1] == MS0 + 20 * SLOT
    writer.refresh()
    # 10:00 is stored provisionally (10:05 < 10:00 + 15 min); 09:30 is the newest complete.
    assert boundaries.last_mark(influx) == MS0 + 20 * SLOT
    assert boundaries.last_mark(influx, complete=True) == MS0 + 19 * SLOT
    # Every boundary of the data is stored and the KPIs read them (no live statement).
    _, stored = _engines(influx)
    w = Window(T0, T0 + timedelta(hours=HOURS))
    truth = {m: sum(r.slot(m) for r in ramps) for m in range(0, 180, 30)}
    for site in (None, "s"):
        assert _slots(stored, Window(w.start, w.end, site)) == pytest.approx(truth, rel=1e-9)
        # One request, nothing live: the window's ends' two FIRST statements only.
        assert "energy_boundary_site" in stored.last_query
        assert stored.last_query.count("FIRST(energy_import_kwh)") == 2


def test_live_boundaries_give_the_stored_answer(influx: InfluxV1) -> None:
    ramps = _ramps()
    m3 = Ramp("m3", MS0 - 20 * MIN + 5_300, 11 * MIN, [2.0, 0.5, 4.0, 1.0] * 5)
    _write(influx, [ln for r in ramps for ln in r.lines()] + m3.lines("t"))
    rollups.setup(influx)
    # Only some boundaries stored (as when the writer has not reached the newest): 00:30
    # and 01:00 from storage, 01:30 and 02:00 live (the window's four inner boundaries).
    rollups.run(influx, T0 - timedelta(hours=1), T0 + timedelta(hours=4))
    influx.execute(f"DELETE FROM {boundaries.MARK} WHERE time > {MS0 + 2 * SLOT}ms")
    assert boundaries.last_mark(influx) == MS0 + 2 * SLOT
    live, stored = _engines(influx)
    for site in (None, "s", "t"):
        w = Window(T0, T0 + timedelta(minutes=150), site)
        mixed = stored.green_slots(w)
        assert mixed.notes == []
        assert mixed.imp == pytest.approx(live.green_slots(w).imp, rel=1e-12)
        assert mixed.exp == pytest.approx(live.green_slots(w).exp, rel=1e-12)
    # The same with every boundary stored again.
    boundaries.fill(influx, MS0, MS0 + 6 * SLOT)
    w = Window(T0, T0 + timedelta(minutes=150))
    assert stored.green_slots(w).imp == pytest.approx(live.green_slots(w).imp, rel=1e-12)


def test_the_api_process_runs_the_writer(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    rollups.setup(influx)
    now = int(time.time() * 1000)
    b = (now - interp.GAP_MS - MIN) // SLOT * SLOT  # complete: b + 15 min is past
    # 3 kWh from b - 100 s to b + 200 s: 1 kWh of it before b.
    _write(influx, [_at("m1", b - 100_000, 10.0), _at("m1", b + 200_000, 13.0)])
    cfg = ApiConfig(refresh_s=0, audit_log=tmp_path / "audit.jsonl")
    off = create_app(settings, cfg, KpiConfig(), boundaries=BoundaryOptions(boundary_s=0))
    assert off.state.api.boundary_writer is None
    app = create_app(settings, cfg, KpiConfig(), boundaries=BoundaryOptions(boundary_s=300))
    writer = app.state.api.boundary_writer
    with TestClient(app):  # the lifespan starts it
        wait_for(lambda: writer.rounds >= 1, 60)
        assert writer.failures == 0
    assert writer._thread is not None and not writer._thread.is_alive()  # and stops it
    assert boundaries.last_mark(influx, complete=True) == (now - interp.GAP_MS) // SLOT * SLOT
    assert boundaries.last_mark(influx) == (now - boundaries.SETTLE_MS) // SLOT * SLOT
    rows = _points(influx)[0][1]
    assert [(r["time"], r["imp_delta"]) for r in rows] == [(b, pytest.approx(1.0))]


def test_the_option_is_in_the_table_and_checked() -> None:
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "machi.cli", "api", "--print-config"]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert '"boundary_s": 300.0' in shown.stdout
    env = {**os.environ, "MACHI_API_BOUNDARY_S": "-1"}
    bad = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "--boundary-s / MACHI_API_BOUNDARY_S = '-1'" in bad.stderr


def test_a_provisional_boundary_is_stored_then_completed(influx: InfluxV1) -> None:
    rollups.setup(influx)
    b = MS0 + 2 * SLOT  # 01:00
    _write(influx, [_at("m1", b - 100_000, 10.0)])  # the reading after b is not in yet
    now = [(b + 2 * MIN) / 1000]
    writer = BoundaryWriter(influx, 300, clock=lambda: now[0])
    writer.refresh()

    def mark() -> dict:
        rows = _points(influx)[2][1]
        return {k: v for r in rows if r["time"] == b for k, v in r.items() if k != "time"}

    assert mark() == {"complete": 0, "gaps": 0, "meters": 0}  # no gap: not in yet
    assert boundaries.last_mark(influx, complete=True) == b - SLOT
    # 3 kWh from b - 100 s to b + 200 s, 1 kWh of it before b; the writer's next round.
    _write(influx, [_at("m1", b + 200_000, 13.0)])
    _, stored = _engines(influx)
    stored.clock = lambda: datetime.fromtimestamp(now[0], UTC)
    w = Window(T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))
    assert _slots(stored, w) == pytest.approx({60: 3.0})  # the provisional delta: none yet
    assert "energy_boundary_site" in stored.last_query  # stored: nothing computed live
    now[0] += 300
    writer.refresh()
    assert mark() == {"complete": 0, "gaps": 0, "meters": 1}
    assert _slots(stored, w) == pytest.approx({30: 1.0, 60: 2.0})
    assert "energy_boundary_site" in stored.last_query
    now[0] += 600  # b + 17 min: complete
    writer.refresh()
    assert mark() == {"complete": 1, "gaps": 0, "meters": 1}
    assert boundaries.last_mark(influx, complete=True) == b
