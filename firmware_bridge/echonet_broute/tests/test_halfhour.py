"""Half-hour (fixed-time) readings: EA/EB/E2/E4/EC decoding against public vectors and
the real BP35A1 session log, and the source's live reading + history backfill through
the pty meter simulator, each half-hour exactly once."""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.base import DecodeError
from firmware_bridge.echonet_broute import frame as el
from firmware_bridge.echonet_broute.simulator import PASSWORD, RBID, BrouteSimulator
from firmware_bridge.echonet_broute.source import BrouteSource
from firmware_bridge.testing import captures_dir, open_source

JST = el.METER_TZ
HALF = el.HALF_HOUR_MS


def jst(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=JST).timestamp() * 1000)  # type: ignore[misc, arg-type]


# -- decoders ------------------------------------------------------------------------


def test_fixed_time_hand_vector_and_no_data() -> None:
    # 2026-11-28 23:30:00 JST, 0x0001E240 = 123456
    assert el.fixed_time(0xEA, bytes.fromhex("07EA0B1C171E000001E240")) == (
        jst(2026, 11, 28, 23, 30),
        123456,
    )
    assert el.fixed_time(0xEB, bytes.fromhex("07EA0B1C171E00FFFFFFFE"))[1] is None
    for bad in ("07EA0B1C171F000001E240", "07EA0B1C171E010001E240", "07EA0D1C171E000001E240"):
        with pytest.raises(DecodeError):  # :31, a second, month 13
            el.fixed_time(0xEA, bytes.fromhex(bad))
    with pytest.raises(DecodeError):
        el.fixed_time(0xEA, bytes.fromhex("07EA0B1C171E000001E2"))  # PDC 10


def test_history1_layout() -> None:
    values = list(range(1000, 1048))
    values[47] = 0xFFFFFFFE  # no data yet at 23:30
    edt = struct.pack(">H", 3) + b"".join(struct.pack(">I", v) for v in values)
    day, got = el.history1(0xE2, edt)
    assert day == 3 and got[:47] == list(range(1000, 1047)) and got[47] is None
    with pytest.raises(DecodeError):
        el.history1(0xE2, edt[:-4])
    with pytest.raises(DecodeError):
        el.history1(0xE2, struct.pack(">H", 100) + edt[2:])  # day 100: beyond 0xE5's 0..99


def test_history2_newest_first_both_directions() -> None:
    edt = bytes.fromhex("07EA0B1D010003") + b"".join(
        struct.pack(">II", 5000 - i, 70 + i) for i in range(3)
    )
    assert el.history2(edt) == [
        (jst(2026, 11, 29, 1, 0), 5000, 70),
        (jst(2026, 11, 29, 0, 30), 4999, 71),
        (jst(2026, 11, 29, 0, 0), 4998, 72),
    ]
    assert el.history2_edt(dt.datetime(2026, 11, 29, 1, 0, tzinfo=JST), 3) == bytes.fromhex(
        "07EA0B1D010003"
    )
    for bad in (edt[:-1], edt[:6] + b"\x0d" + edt[7:], bytes.fromhex("07EA0B1D010F01") + bytes(8)):
        with pytest.raises(DecodeError):
            el.history2(bad)


def test_public_ea_vectors() -> None:
    frames = json.loads((captures_dir("echonet") / "frames.json").read_text())
    vectors = [v for v in frames["edt_vectors"] if v["epc"] == "EA"]
    assert len(vectors) == 2
    for v in vectors:
        t_ms, raw = el.fixed_time(0xEA, bytes.fromhex(v["edt"]))
        when, kwh = v["expect"]
        assert t_ms == int(dt.datetime.fromisoformat(when).replace(tzinfo=JST).timestamp()) * 1000
        mul, div = el.UNIT_CODES[v["unit_code"]]
        assert (None if raw is None else el.kwh(raw, (mul, div), v["coeff"])) == kwh
    # An INF with EA and EB (RATOC RS-WSUHA-P, C-series ERXUDP).
    line = next(x for x in frames["erxudp_lines"] if x["id"] == "qiita-rs-wsuha-inf-ea-eb")
    data = bytes.fromhex(line["line"].split()[-1])
    f = el.parse_frame(data)
    got = {epc: el.fixed_time(epc, edt) for epc, edt in f.props}
    for epc, key in ((0xEA, "ea"), (0xEB, "eb")):
        when, count = line["expect"][key]
        assert got[epc] == (
            int(dt.datetime.fromisoformat(when).replace(tzinfo=JST).timestamp()) * 1000,
            count,
        )


def test_real_bp35a1_session_log_fixed_time_frames() -> None:
    # The real session's Get_Res and INF of EA, and the values its firmware printed
    # ("2022/ 8/ 1 20:00:00 76999", unit 0.01 kWh).
    log = (captures_dir("echonet") / "ak1211-m5stickc-wisunhat-BP35A1_comm.log").read_text()
    frames = [
        el.parse_frame(bytes.fromhex(m))
        for m in re.findall(r'"DATA":"(1081[0-9A-F]+)"', log)
        if "EA0B" in m
    ]
    assert [f.esv for f in frames] == [el.GET_RES, el.INF]
    got = [el.fixed_time(0xEA, dict(f.props)[0xEA], digits=7) for f in frames]
    assert got == [(jst(2022, 8, 1, 20, 0), 76999), (jst(2022, 8, 1, 20, 30), 77058)]
    assert "2022/ 8/ 1 20:00:00 76999" in log
    assert el.kwh(76999, el.UNIT_CODES[0x02], 1) == 769.99


# -- the source against the simulated meter -------------------------------------------


def _source(sim: BrouteSimulator, **extra: Any) -> BrouteSource:
    return open_source(
        {
            "type": "echonet_broute",
            "device_id": "meter-b1",
            "port": str(sim.path),
            "broute_id": RBID,
            "broute_password": PASSWORD,
            "interval_s": 0.05,
            "timeout_s": 0.4,
            "join_timeout_s": 1.0,
            **extra,
        },
        BrouteSource,
        "energy_meter",
    )


def _fixed_until(src: BrouteSource, newest: int, limit: float = 10.0) -> list[dict[str, Any]]:
    """Read until the fixed-time reading of ``newest`` came; return the fixed readings."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out += [r for r in src.read() if "t" in r]
        if any(r["t"] == newest for r in out):
            for _ in range(3):  # nothing more may follow for the same boundaries
                out += [r for r in src.read() if "t" in r]
            return out
    raise AssertionError(f"no fixed-time reading for {newest}; got {[r['t'] for r in out]}")


@pytest.mark.parametrize("history2", [True, False])
def test_start_backfills_then_a_3_hour_outage_is_recovered_exactly_once(
    tmp_path: Path, history2: bool
) -> None:
    start = jst(2026, 11, 28, 23, 10) / 1000  # meter clock; the outage spans midnight
    with BrouteSimulator(tmp_path, meter_time=start, history2=history2) as sim:
        meter = sim.broute
        src = _source(sim, backfill_days=1)
        try:
            newest = jst(2026, 11, 28, 23, 0)
            first = _fixed_until(src, newest)
            # the day before the newest boundary from history, then the newest from EA
            want = [meter.fixed_truth(t) for t in range(newest - 48 * HALF, newest + 1, HALF)]
            assert first == want
            meter.answer_gets = False  # Wi-SUN outage
            for _ in range(4):
                assert [r for r in src.read() if "t" in r] == []
            meter.meter_time = start + 3 * 3600  # 02:10 JST next day
            meter.answer_gets = True
            recovered = _fixed_until(src, jst(2026, 11, 29, 2, 0))
        finally:
            src.close()
    assert recovered == [meter.fixed_truth(newest + k * HALF) for k in range(1, 7)]
    every = [r["t"] for r in first + recovered]
    assert len(every) == len(set(every)) == 55  # each half-hour once
    if history2:
        assert (el.GET, el.E_HISTORY2) in meter.requests
        assert (el.GET, el.E_HISTORY_IMPORT) not in meter.requests
    else:  # the older meter refuses 0xED: one 0xE5 + 0xE2/E4 per day of the gap
        assert (el.GET, el.E_HISTORY2) not in meter.requests
        days = [epc for esv, epc in meter.requests if (esv, epc) == (el.SETC, el.E_HISTORY_DAY)]
        assert len(days) == 2 + 2  # start: today and yesterday; outage: both sides of 00:00


def test_history_the_meter_no_longer_keeps_is_given_up(tmp_path: Path) -> None:
    start = jst(2026, 11, 28, 9, 40) / 1000
    with BrouteSimulator(tmp_path, meter_time=start, history2=False, history_days=1) as sim:
        src = _source(sim, backfill_days=2)
        try:
            newest = jst(2026, 11, 28, 9, 30)
            got = _fixed_until(src, newest)
            for _ in range(3):
                got += [r for r in src.read() if "t" in r]  # no retries of what is gone
        finally:
            src.close()
    # Only today's boundaries (00:00 .. 09:30) exist on a meter keeping one day.
    assert [r["t"] for r in got] == list(range(jst(2026, 11, 28, 0, 0), newest + 1, HALF))
    assert got == [sim.broute.fixed_truth(r["t"]) for r in got]


def test_no_backfill_gives_just_the_live_half_hours(tmp_path: Path) -> None:
    start = jst(2026, 11, 28, 12, 29, 50) / 1000
    with BrouteSimulator(tmp_path, meter_time=start) as sim:
        src = _source(sim, backfill_days=0)
        try:
            got = _fixed_until(src, jst(2026, 11, 28, 12, 0))
            sim.broute.meter_time = start + 20  # 12:30:10: the next boundary
            got += _fixed_until(src, jst(2026, 11, 28, 12, 30))
        finally:
            src.close()
    assert [r["t"] for r in got] == [jst(2026, 11, 28, 12, 0), jst(2026, 11, 28, 12, 30)]
    assert all(set(r) == {"t", "fixed_import_kwh", "fixed_export_kwh"} for r in got)


def test_sample_config_has_backfill() -> None:
    import tomllib

    from firmware_bridge.registry import make_source

    doc = tomllib.loads((Path(__file__).parents[1] / "sample.toml").read_text())
    (cfg,) = doc["sources"]
    src = make_source(cfg)
    assert isinstance(src, BrouteSource) and src.backfill_ms == 48 * HALF
