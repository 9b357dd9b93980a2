"""SdmSource (pymodbus RTU client) over the pty meter simulator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contract.settings import ConfigError
from firmware_bridge.modbus_sdm.simulator import SdmSimulator
from firmware_bridge.modbus_sdm.source import RESPONSE_LEN, SdmSource
from firmware_bridge.registry import make_source
from firmware_bridge.testing import open_source, unplug_and_replug


@pytest.fixture
def sim(tmp_path: Path):
    with SdmSimulator(tmp_path, unit_id=7) as s:
        yield s


def _source(sim: SdmSimulator) -> SdmSource:
    return open_source(
        {
            "type": "modbus_sdm",
            "device_id": "meter-1",
            "port": str(sim.path),
            "unit_id": 7,
            "interval_s": 0.05,
            "timeout_s": 0.3,
        },
        SdmSource,
        "energy_meter",
    )


def test_values_decoded_exactly(sim: SdmSimulator) -> None:
    src = _source(sim)
    try:
        got = [r for _ in range(5) for r in src.read()]
    finally:
        src.close()
    assert got == sim.sent[-5:] and len(got) == 5
    assert any(r["power_w"] < 0 for r in got) or any(r["power_w"] > 0 for r in got)
    assert src.take_rejects() == []


def test_wrong_unit_is_silence_not_a_hang(sim: SdmSimulator) -> None:
    src = SdmSource(str(sim.path), unit_id=3, interval_s=0.05, timeout_s=0.3)
    src.open()
    try:
        t0 = time.monotonic()
        assert src.read() == []
        assert time.monotonic() - t0 < 2.0
    finally:
        src.close()


@pytest.mark.parametrize("mode", ["bad_checksum", "truncated", "noise", "silence"])
def test_faults(sim: SdmSimulator, mode: str) -> None:
    src = _source(sim)
    try:
        assert src.read()
        sim.set_fault(mode, frames=2)
        t0 = time.monotonic()
        faulted = [src.read(), src.read()]
        assert time.monotonic() - t0 < 3.0
        good = src.read() + src.read()
    finally:
        src.close()
    rejects = src.take_rejects()
    if mode == "silence":
        assert faulted == [[], []] and rejects == []
    else:  # pymodbus's RTU framer does not resync past leading garbage: poll lost
        assert faulted == [[], []]
        assert [r for r, _ in rejects] == [mode, mode]
        assert all(raw for _, raw in rejects)
        if mode == "noise":  # garbage + the intact frame were kept for inspection
            assert all(len(raw) > RESPONSE_LEN for _, raw in rejects)
    assert len(good) == 2 and good == sim.sent[-2:]


def test_disappear_and_come_back(sim: SdmSimulator) -> None:
    src = _source(sim)
    try:
        assert src.read()
        unplug_and_replug(src, sim)
        got = src.read()
        assert got and got == sim.sent[-1:]
    finally:
        src.close()
        src.close()


def test_config_errors() -> None:
    base = {"type": "modbus_sdm", "device_id": "m-1", "port": "/dev/null"}
    with pytest.raises(ConfigError, match="unit_id"):
        make_source({**base, "unit_id": 300})
    with pytest.raises(ConfigError, match="parity"):
        make_source({**base, "parity": "X"})
