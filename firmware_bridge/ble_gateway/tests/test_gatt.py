"""GATT decoders against spec-table vectors, plus fuzzing.

The vectors are encoded by hand from the field tables of the Bluetooth GATT
Specification Supplement (s.3.113 Heart Rate Measurement, s.3.171 PLX Continuous
Measurement, Battery Level, Temperature Measurement) and IEEE 11073-20601 (SFLOAT/FLOAT
and their reserved special values); each comment shows the field split.
"""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.base import DecodeError
from firmware_bridge.ble_gateway import gatt


def test_heart_rate_uint8_with_contact() -> None:
    hr = gatt.decode_heart_rate(bytes.fromhex("0648"))  # flags 0b110: contact supported+detected
    assert (hr.bpm, hr.contact, hr.energy_kj, hr.rr_s) == (72, True, None, ())


def test_heart_rate_uint16() -> None:
    assert gatt.decode_heart_rate(bytes.fromhex("012C01")).bpm == 300  # 0x012C LE
    assert gatt.decode_heart_rate(bytes.fromhex("012C01")).contact is None  # not supported


def test_heart_rate_energy_and_several_rr() -> None:
    # flags 0x1E: contact ok, energy present, RR present; HR 0x50; energy 0x0010;
    # RR 0x032E, 0x031F, 0x0400 (1/1024 s)
    hr = gatt.decode_heart_rate(bytes.fromhex("1E5010002E031F030004"))
    assert hr.bpm == 80 and hr.energy_kj == 16
    assert hr.rr_s == (814 / 1024, 799 / 1024, 1.0)


def test_heart_rate_without_contact_is_rejected() -> None:
    with pytest.raises(DecodeError) as err:
        gatt.to_reading(gatt.HEART_RATE, bytes.fromhex("0400"))  # supported, not detected
    assert err.value.reason == "no_contact"


@pytest.mark.parametrize("hexdata", ["06", "01", "1E50", "1648FF", "0A4801", "0648AA"])
def test_heart_rate_truncated_or_trailing(hexdata: str) -> None:
    with pytest.raises(DecodeError):
        gatt.decode_heart_rate(bytes.fromhex(hexdata))


@pytest.mark.parametrize(
    "raw,value",
    [
        (0x0061, 97.0),  # exponent 0, mantissa 97
        (0xF3CF, 97.5),  # exponent -1, mantissa 0x3CF = 975
        (0xFFFF, -0.1),  # exponent -1, mantissa -1
        (0x2001, 100.0),  # exponent 2, mantissa 1
        (0x07FD, 2045.0),  # largest ordinary positive mantissa
    ],
)
def test_sfloat(raw: int, value: float) -> None:
    assert gatt.sfloat(raw) == value


@pytest.mark.parametrize(
    "raw,name", [(0x07FF, "NaN"), (0x0800, "NRes"), (0x07FE, "+INF"), (0x0802, "-INF")]
)
def test_sfloat_specials_are_not_numbers(raw: int, name: str) -> None:
    with pytest.raises(gatt.NotANumber) as err:
        gatt.sfloat(raw)
    assert err.value.name == name and err.value.reason == "not_a_number"


def test_plx_continuous() -> None:
    # flags 0; SpO2 SFLOAT 0xF3CF (97.5) LE; pulse SFLOAT 0x0048 (72) LE
    assert gatt.to_reading(gatt.PLX_CONTINUOUS, bytes.fromhex("00CFF34800")) == {
        "spo2_pct": 97.5,
        "heart_rate_bpm": 72.0,
    }


def test_plx_nan_field_is_omitted_and_all_nan_rejected() -> None:
    assert gatt.to_reading(gatt.PLX_CONTINUOUS, bytes.fromhex("00FF074800")) == {
        "heart_rate_bpm": 72.0
    }
    with pytest.raises(DecodeError) as err:
        gatt.to_reading(gatt.PLX_CONTINUOUS, bytes.fromhex("00FE070208"))  # +INF, -INF
    assert err.value.reason == "not_a_number" and "+INF" in str(err.value)


def test_plx_optional_fields_length_checked() -> None:
    # flags 0x01 (Fast SpO2PR present) needs 4 more bytes
    with pytest.raises(DecodeError):
        gatt.decode_plx_continuous(bytes.fromhex("01CFF34800"))
    plx = gatt.decode_plx_continuous(bytes.fromhex("01CFF34800CFF34800"))
    assert plx.spo2_pct == 97.5


def test_battery_and_temperature() -> None:
    assert gatt.to_reading(gatt.BATTERY_LEVEL, b"\x55") == {"battery_pct": 85}
    with pytest.raises(DecodeError):
        gatt.to_reading(gatt.BATTERY_LEVEL, b"\x65")  # 101 %
    # flags 0 (Celsius); FLOAT mantissa 0x00016C = 364, exponent 0xFF = -1 -> 36.4
    assert gatt.to_reading(gatt.TEMPERATURE, bytes.fromhex("006C0100FF")) == {"skin_temp_c": 36.4}
    # flags 1 (Fahrenheit); 977 * 10^-1 = 97.7 F -> 36.5 C
    assert gatt.decode_temperature(bytes.fromhex("01D10300FF")) == pytest.approx(36.5)
    with pytest.raises(gatt.NotANumber):
        gatt.decode_temperature(bytes.fromhex("00FFFF7F00"))  # FLOAT NaN 0x007FFFFF


def test_unknown_characteristic() -> None:
    with pytest.raises(DecodeError) as err:
        gatt.to_reading(0x2A00, b"abc")
    assert err.value.reason == "unsupported"


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([0x2A37, 0x2A5F, 0x2A19, 0x2A1C, 0x1234]), st.binary(max_size=24))
def test_fuzz_only_decode_errors_and_finite_values(uuid16: int, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        reading = gatt.to_reading(uuid16, data)
        assert reading and all(math.isfinite(v) for v in reading.values())
