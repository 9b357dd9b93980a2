"""NmeaSource over the pty simulator, with pyserial, through every fault mode."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from firmware_bridge.nmea_gps.simulator import NmeaSimulator
from firmware_bridge.nmea_gps.source import NmeaSource
from firmware_bridge.registry import make_source
from firmware_bridge.testing import read_n, unplug_and_replug


@pytest.fixture
def sim(tmp_path: Path):
    with NmeaSimulator(tmp_path, period_s=0.05, talker="QZ") as s:
        yield s


def _source(sim: NmeaSimulator, timeout: float = 1.0) -> NmeaSource:
    src = NmeaSource(str(sim.path), "R10", read_timeout_s=timeout, trip_id="T-1")
    src.open()
    return src


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("route_id", "trip_id")}


def test_values_decoded_exactly(sim: NmeaSimulator) -> None:
    src = _source(sim)
    try:
        got = read_n(src, 5)
    finally:
        src.close()
    assert len(got) == 5
    assert all(r["route_id"] == "R10" and r["trip_id"] == "T-1" for r in got)
    truth = {r["t"]: r for r in sim.sent}
    for r in got:
        assert _strip(r) == truth[r["t"]]  # exact floats, same digits
    assert src.take_rejects() == []


def test_no_fix_epochs_are_skipped(tmp_path: Path) -> None:
    with NmeaSimulator(tmp_path, period_s=0.05, no_fix_epochs=3) as sim:
        src = _source(sim)
        got = read_n(src, 2)
        src.close()
    assert len(got) == 2 and src.take_rejects() == []
    assert all(r["t"] in {t["t"] for t in sim.sent} for r in got)


@pytest.mark.parametrize(
    "mode,reason",
    [("bad_checksum", "bad_checksum"), ("noise", "noise"), ("truncated", "truncated")],
)
def test_fault_is_counted_and_good_data_flows(sim: NmeaSimulator, mode: str, reason: str) -> None:
    src = _source(sim)
    try:
        read_n(src, 1)
        sim.set_fault(mode, frames=6)
        got = read_n(src, 6)
        time.sleep(0.1)
        got += src.read()
    finally:
        src.close()
    rejects = src.take_rejects()
    assert reason in {r for r, _ in rejects}, rejects
    assert src.take_rejects() == []  # taken means forgotten
    truth = {r["t"]: r for r in sim.sent}
    assert got and all(_strip(r) == truth[r["t"]] for r in got)
    if mode != "noise":  # damaged frames were really sent, and none of them decoded
        assert [raw for m, raw in sim.faulted if m == mode]


def test_silence_returns_empty_without_hanging(sim: NmeaSimulator) -> None:
    src = _source(sim, timeout=0.3)
    try:
        read_n(src, 1)
        sim.set_fault("silence")
        time.sleep(0.2)
        src.read()  # drain what was in flight
        t0 = time.monotonic()
        assert src.read() == []
        assert time.monotonic() - t0 < 1.0
        sim.clear_fault()
        assert read_n(src, 1)
    finally:
        src.close()


def test_disappear_and_come_back(sim: NmeaSimulator) -> None:
    src = _source(sim, timeout=0.5)
    try:
        assert read_n(src, 1)
        unplug_and_replug(src, sim, reads=10)
        assert read_n(src, 2)
    finally:
        src.close()
        src.close()  # twice is safe


def test_registry_builds_nmea_source(sim: NmeaSimulator) -> None:
    src = make_source(
        {
            "type": "nmea_gps",
            "device_id": "bus-1",
            "site": "kofu",
            "port": str(sim.path),
            "route_id": "R7",
            "interval_s": 1.0,
        }
    )
    assert src.kind == "bus"
    src.open()
    try:
        got = read_n(src, 1)
    finally:
        src.close()
    assert got[0]["route_id"] == "R7" and "trip_id" not in got[0]


@pytest.mark.parametrize("kind", ["simulated", "dead_reckoning"])
def test_unmeasured_positions_are_rejects_not_bus_positions(tmp_path: Path, kind: str) -> None:
    # Garmin simulator mode (RMC V/S + GGA 8) and a lost sky (RMC V/E + GGA 6, 0 sats):
    # no reading, two rejects per epoch with the reason, then real fixes flow again.
    with NmeaSimulator(tmp_path, period_s=0.05, unmeasured_epochs=4, unmeasured=kind) as sim:
        src = NmeaSource(str(sim.path), "R10", read_timeout_s=1.0)
        src.open()
        try:
            got = read_n(src, 3)
        finally:
            src.close()
        truth = {r["t"]: r for r in sim.sent}
    assert len(got) == 3 and all(truth[r["t"]]["lat"] == r["lat"] for r in got)
    rejects = src.take_rejects()
    assert [reason for reason, _ in rejects] == [kind] * 8
    assert all(raw.startswith(b"$GN") for _, raw in rejects)
