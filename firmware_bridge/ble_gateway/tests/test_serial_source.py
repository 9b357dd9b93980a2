"""BleSerialSource over the pty gateway simulator (pyserial), through the fault modes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contract.settings import ConfigError
from firmware_bridge.base import DeviceError
from firmware_bridge.ble_gateway.serial_source import BleSerialSource
from firmware_bridge.ble_gateway.simulator import BleSerialSimulator
from firmware_bridge.registry import make_source
from firmware_bridge.testing import open_source, read_n

DEVICES = {"C0FFEE000001": "care-0001", "C0FFEE000002": "care-0002"}


@pytest.fixture
def sim(tmp_path: Path):
    with BleSerialSimulator(tmp_path, period_s=0.02) as s:
        yield s


def _source(sim: BleSerialSimulator, timeout: float = 1.0) -> BleSerialSource:
    return open_source(
        {
            "type": "ble_gateway_serial",
            "device_id": "gw-1",
            "port": str(sim.path),
            "interval_s": timeout,
            "devices": {"C0:FF:EE:00:00:01": "care-0001", "c0ffee000002": "care-0002"},
        },
        BleSerialSource,
        "wearable",
    )


def _expected(sim: BleSerialSimulator) -> list[dict]:
    return [
        {"device_id": DEVICES[t["mac"]], **{k: v for k, v in t.items() if k != "mac"}}
        for t in sim.sent
    ]


def test_values_decoded_exactly_with_device_ids(sim: BleSerialSimulator) -> None:
    src = _source(sim)
    try:
        got = read_n(src, 12)
    finally:
        src.close()
    assert len(got) >= 12
    exp = _expected(sim)
    # Every reading is one the simulator sent, in order, with no raw MAC in it.
    start = exp.index(got[0])
    assert got == exp[start : start + len(got)]
    assert {r["device_id"] for r in got} == {"care-0001", "care-0002"}
    assert any(
        "spo2_pct" not in r and "heart_rate_bpm" in r and isinstance(r["heart_rate_bpm"], float)
        for r in got
    )  # NaN SpO2 omitted
    assert src.take_rejects() == []


@pytest.mark.parametrize("mode", ["bad_checksum", "noise", "truncated"])
def test_faults_counted_and_good_data_flows(sim: BleSerialSimulator, mode: str) -> None:
    src = _source(sim)
    try:
        read_n(src, 1)
        sim.set_fault(mode, frames=5)
        got = read_n(src, 10)
    finally:
        src.close()
    rejects = src.take_rejects()
    reasons = {r for r, _ in rejects}
    if mode == "bad_checksum":
        assert reasons == {"bad_checksum"} and len(rejects) == 5
    else:  # noise / a cut line merge with the following line, which is then lost too
        assert reasons and reasons <= {"noise", "truncated", "bad_checksum"}
    exp = _expected(sim)
    assert len(got) >= 5 and all(r in exp for r in got)


def test_unknown_wearable_is_rejected_not_forwarded(tmp_path: Path) -> None:
    with BleSerialSimulator(tmp_path, macs=("C0FFEE000001", "DEADBEEF0001"), period_s=0.02) as sim:
        src = BleSerialSource(str(sim.path), {"C0FFEE000001": "care-0001"}, read_timeout_s=0.5)
        src.open()
        got = read_n(src, 6)
        src.close()
    assert all(r["device_id"] == "care-0001" for r in got)
    rejects = src.take_rejects()
    assert rejects and {r for r, _ in rejects} == {"unknown_device"}
    assert all(b"DE:AD:BE:EF:00:01" in raw for _, raw in rejects)  # kept for inspection


def test_silence_then_unplug_and_replug(sim: BleSerialSimulator) -> None:
    src = _source(sim, timeout=0.3)
    try:
        assert read_n(src, 1)
        sim.set_fault("silence")
        time.sleep(0.1)
        src.read()
        t0 = time.monotonic()
        assert src.read() == []
        assert time.monotonic() - t0 < 1.0
        sim.clear_fault()
        sim.set_fault("disappear")
        with pytest.raises(DeviceError):
            for _ in range(10):
                src.read()
        src.close()
        sim.replug()
        src.open()
        assert read_n(src, 3)
    finally:
        src.close()


def test_config_errors() -> None:
    base = {"type": "ble_gateway_serial", "device_id": "gw-1", "port": "/dev/null"}
    with pytest.raises(ConfigError, match="devices"):
        make_source(base)
    with pytest.raises(ConfigError, match="not a Bluetooth MAC"):
        make_source({**base, "devices": {"xyz": "care-1"}})
    with pytest.raises(ConfigError, match="invalid"):
        make_source({**base, "devices": {"C0FFEE000001": "bad id!"}})


def test_flagged_plx_are_rejects_and_spot_check_keeps_its_time(tmp_path: Path) -> None:
    from firmware_bridge.ble_gateway import gatt
    from firmware_bridge.ble_gateway.tests.test_plx_status import continuous, spot_check

    with BleSerialSimulator(tmp_path, period_s=0.02, macs=("C0FFEE000001",)) as sim:
        mac = "C0FFEE000001"
        sim.notify(mac, gatt.PLX_CONTINUOUS, continuous(ms=1 << 15))  # invalid
        sim.notify(mac, gatt.PLX_CONTINUOUS, continuous(ms=1 << 10))  # demonstration
        sim.notify(mac, gatt.PLX_CONTINUOUS, continuous(dss=1 << 11))  # unconnected to user
        sim.notify(mac, gatt.PLX_CONTINUOUS, continuous(dss=1 << 15))  # disconnected
        stamp = (2026, 12, 1, 9, 30, 15)  # 09:30:15 JST = 00:30:15 UTC
        t_ms = 1796085015000
        sim.notify(
            mac,
            gatt.PLX_SPOT_CHECK,
            spot_check(stamp),
            {"spo2_pct": 95.0, "heart_rate_bpm": 90.0, "t": t_ms},
        )
        src = _source(sim)
        try:
            got = read_n(src, 6)
        finally:
            src.close()
    assert got[0] == {"device_id": "care-0001", "spo2_pct": 95.0, "heart_rate_bpm": 90.0, "t": t_ms}
    assert all("t" not in r for r in got[1:])  # round-robin readings: the agent stamps them
    reasons = [reason for reason, _ in src.take_rejects()]
    assert reasons == [
        "plx_invalid",
        "plx_demonstration",
        "plx_sensor_unconnected",
        "plx_sensor_disconnected",
    ]
