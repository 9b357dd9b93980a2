"""PLX status fields and Spot-Check: values the device flags are rejects, each with its
own reason (hand-encoded from the GATT Specification Supplement's PLX field tables),
plus the public vectors in ../shared/captures/ble when present."""

from __future__ import annotations

import datetime as dt
import json
import struct

import pytest

from contract.settings import ConfigError
from firmware_bridge.base import DecodeError
from firmware_bridge.ble_gateway import gatt
from firmware_bridge.testing import captures_dir

SPO2_95_PR_90 = bytes.fromhex("5F005A00")  # SFLOAT 95, SFLOAT 90


def continuous(ms: int | None = None, dss: int | None = None) -> bytes:
    flags = (0x04 if ms is not None else 0) | (0x08 if dss is not None else 0)
    out = bytes([flags]) + SPO2_95_PR_90
    if ms is not None:
        out += struct.pack("<H", ms)
    if dss is not None:
        out += dss.to_bytes(3, "little")
    return out


def spot_check(
    stamp: tuple[int, ...] | None = None, ms: int | None = None, clock_not_set: bool = False
) -> bytes:
    flags = (0x01 if stamp else 0) | (0x02 if ms is not None else 0) | (0x10 * clock_not_set)
    out = bytes([flags]) + SPO2_95_PR_90
    if stamp:
        out += struct.pack("<HBBBBB", *stamp)
    if ms is not None:
        out += struct.pack("<H", ms)
    return out


@pytest.mark.parametrize(
    ("bit", "reason"),
    [
        (15, "plx_invalid"),
        (13, "plx_unavailable"),
        (14, "plx_questionable"),
        (12, "plx_calibrating"),
        (10, "plx_demonstration"),
        (11, "plx_testing"),
    ],
)
def test_measurement_status_flags_are_rejects(bit: int, reason: str) -> None:
    for uuid, data in (
        (gatt.PLX_CONTINUOUS, continuous(ms=1 << bit)),
        (gatt.PLX_SPOT_CHECK, spot_check(ms=1 << bit)),
    ):
        with pytest.raises(DecodeError) as err:
            gatt.to_reading(uuid, data)
        assert err.value.reason == reason


@pytest.mark.parametrize(
    ("bit", "reason"),
    [
        (15, "plx_sensor_disconnected"),
        (11, "plx_sensor_unconnected"),
        (14, "plx_sensor_malfunction"),
        (1, "plx_equipment_malfunction"),
        (13, "plx_sensor_displaced"),
        (12, "plx_unknown_sensor"),
    ],
)
def test_device_and_sensor_status_flags_are_rejects(bit: int, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        gatt.to_reading(gatt.PLX_CONTINUOUS, continuous(dss=1 << bit))
    assert err.value.reason == reason


def test_usable_status_flags_keep_the_value() -> None:
    # measurement ongoing (5), validated (7), fully qualified (8); low perfusion (5),
    # poor signal (4) are advisories: the device still stands behind its value.
    data = continuous(ms=1 << 5 | 1 << 7 | 1 << 8, dss=1 << 5 | 1 << 4)
    assert gatt.to_reading(gatt.PLX_CONTINUOUS, data) == {"spo2_pct": 95.0, "heart_rate_bpm": 90.0}


def test_several_flags_name_them_all() -> None:
    with pytest.raises(DecodeError) as err:
        gatt.to_reading(gatt.PLX_CONTINUOUS, continuous(ms=1 << 10, dss=1 << 11))
    assert err.value.reason == "plx_demonstration"
    assert "plx_sensor_unconnected" in str(err.value)


def test_spot_check_with_timestamp() -> None:
    reading = gatt.to_reading(gatt.PLX_SPOT_CHECK, spot_check((2026, 12, 1, 9, 30, 15)))
    when = dt.datetime(2026, 12, 1, 0, 30, 15, tzinfo=dt.UTC)  # 09:30:15 JST
    assert reading == {"spo2_pct": 95.0, "heart_rate_bpm": 90.0, "t": int(when.timestamp()) * 1000}
    utc = gatt.to_reading(gatt.PLX_SPOT_CHECK, spot_check((2026, 12, 1, 9, 30, 15)), dt.UTC)
    assert utc["t"] - reading["t"] == 9 * 3600 * 1000


def test_spot_check_without_a_set_clock_has_no_time() -> None:
    data = spot_check((2026, 12, 1, 9, 30, 15), clock_not_set=True)
    assert "t" not in gatt.to_reading(gatt.PLX_SPOT_CHECK, data)
    assert "t" not in gatt.to_reading(gatt.PLX_SPOT_CHECK, spot_check((0, 0, 0, 0, 0, 0)))
    assert "t" not in gatt.to_reading(gatt.PLX_SPOT_CHECK, spot_check())


@pytest.mark.parametrize("hexdata", ["01", "015F005A", "015F005A00E807", "025F005A0020"])
def test_spot_check_truncated(hexdata: str) -> None:
    with pytest.raises(DecodeError) as err:
        gatt.decode_plx_spot_check(bytes.fromhex(hexdata))
    assert err.value.reason == "truncated"


def test_spot_check_bad_date_is_malformed() -> None:
    with pytest.raises(DecodeError):
        gatt.to_reading(gatt.PLX_SPOT_CHECK, spot_check((2026, 13, 40, 9, 30, 15)))


def test_public_plx_vectors() -> None:
    vectors = json.loads((captures_dir("ble") / "vectors.json").read_text())
    for v in vectors["plx_continuous"]:
        plx = gatt.decode_plx_continuous(bytes.fromhex(v["hex"]))
        exp = v["expect"]
        assert (plx.spo2_pct, plx.pulse_bpm) == (exp["spo2"], exp["pr"]), v["origin"]
        assert plx.measurement_status == exp.get("status"), v["origin"]
    (spot,) = vectors["plx_spot_check"]
    plx = gatt.decode_plx_spot_check(bytes.fromhex(spot["hex"]), dt.UTC)
    assert (plx.spo2_pct, plx.pulse_bpm) == (spot["expect"]["spo2"], spot["expect"]["pr"])
    assert plx.measurement_status == spot["expect"]["status"]
    assert plx.sensor_status == spot["expect"]["device_status"]
    assert plx.t_ms == int(dt.datetime(2024, 11, 29, 23, 8, 57, tzinfo=dt.UTC).timestamp()) * 1000
    # Its status has Questionable Measurement (bit 14) and Equipment Malfunction (bit 1).
    with pytest.raises(DecodeError) as err:
        gatt.to_reading(gatt.PLX_SPOT_CHECK, bytes.fromhex(spot["hex"]))
    assert err.value.reason == "plx_questionable"


def test_sample_config_device_timezone() -> None:
    import tomllib
    from pathlib import Path

    from firmware_bridge.ble_gateway.serial_source import BleSerialSource
    from firmware_bridge.registry import make_source

    doc = tomllib.loads((Path(__file__).parents[1] / "sample.toml").read_text())
    serial = next(c for c in doc["sources"] if c["type"] == "ble_gateway_serial")
    src = make_source(serial)
    assert isinstance(src, BleSerialSource) and str(src.device_tz) == "Asia/Tokyo"
    with pytest.raises(ConfigError, match="device_timezone"):
        make_source({**serial, "device_timezone": "Mars/Olympus"})
