"""SdmSource (pymodbus RTU client) over the pty meter simulator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contract.settings import ConfigError
from firmware_bridge.modbus_sdm.simulator import PymodbusSdmSimulator, SdmSimulator
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


SDM72_FIELDS = {"power_w": -346.5, "energy_import_kwh": 18120.5, "energy_export_kwh": 4711.25}
SDM630_EXPORT = {  # three phases exporting; the total is not 3 x L1
    "power_l1_w": -179.75,
    "power_l2_w": -120.5,
    "power_l3_w": -46.25,
    "power_w": -346.5,
    "voltage_l1_v": 230.5,
    "voltage_l2_v": 231.25,
    "voltage_l3_v": 229.75,
    "current_l1_a": 0.75,
    "current_l2_a": 0.5,
    "current_l3_a": 0.25,
    "energy_import_kwh": 18120.5,
    "energy_export_kwh": 4711.25,
}


@pytest.mark.parametrize(
    ("model", "want"),
    [
        ("sdm630", SDM630_EXPORT),
        ("sdm72v2", SDM630_EXPORT),
        ("sdm72", SDM72_FIELDS),
        (
            "sdm120",
            {"voltage_v": 230.5, "current_a": 0.75, "power_w": -179.75}
            | {k: SDM630_EXPORT[k] for k in ("energy_import_kwh", "energy_export_kwh")},
        ),
    ],
)
def test_pymodbus_rtu_server_laid_out_per_model(tmp_path: Path, model: str, want: dict) -> None:
    # pymodbus's own RTU server holds the registers where each model has them: power_w of
    # a three-phase meter is the total system power 0x0034, not L1's 0x000C.
    regs = dict(SDM630_EXPORT, voltage_v=230.5, current_a=0.75)
    if model == "sdm120":
        regs["power_w"] = -179.75  # 0x000C: the single phase
    with PymodbusSdmSimulator(tmp_path, model, regs, unit_id=7) as sim:
        src = open_source(
            {
                "type": "modbus_sdm",
                "device_id": "meter-3p",
                "port": str(sim.path),
                "unit_id": 7,
                "model": model,
                "interval_s": 0.05,
                "timeout_s": 1.0,
            },
            SdmSource,
            "energy_meter",
        )
        try:
            got = src.read()
        finally:
            src.close()
    assert got == [want]
    assert src.take_rejects() == []


def test_own_simulator_as_sdm630_gives_total_power(tmp_path: Path) -> None:
    with SdmSimulator(tmp_path, unit_id=2, model="sdm630") as sim:
        src = SdmSource(str(sim.path), unit_id=2, interval_s=0.05, timeout_s=0.5, model="sdm630")
        src.open()
        try:
            got = [r for _ in range(4) for r in src.read()]
        finally:
            src.close()
    assert got == sim.sent[-4:] and len(got) == 4
    export = next(r for r in got if r["power_w"] < 0)
    assert export["power_w"] == -346.5 and export["power_l1_w"] == -179.75
    assert "voltage_v" not in got[0] and "current_a" not in got[0]


def test_model_config_error() -> None:
    with pytest.raises(ConfigError, match="model must be one of"):
        make_source({"type": "modbus_sdm", "device_id": "m-1", "port": "/x", "model": "sdm999"})


def test_sample_config_builds_a_three_phase_source() -> None:
    import tomllib

    doc = tomllib.loads((Path(__file__).parents[1] / "sample.toml").read_text())
    (cfg,) = doc["sources"]
    src = make_source(cfg)
    assert isinstance(src, SdmSource) and src.model == "sdm630"
