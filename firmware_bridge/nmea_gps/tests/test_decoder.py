"""NMEA decoder against published sentences, plus fuzzing."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.base import DecodeError
from firmware_bridge.nmea_gps.decoder import checksum, decode_sentence
from firmware_bridge.nmea_gps.simulator import sentence

# The worked examples of Dale DePriest's "NMEA data" reference (gpsinformation.org),
# the most quoted public description of RMC and GGA.
RMC_DEPRIEST = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
GGA_DEPRIEST = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
# The example in pynmea2's README / docstring (southern and eastern hemisphere).
GGA_PYNMEA2 = b"$GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000*6D"


def test_rmc_published_example() -> None:
    fix = decode_sentence(RMC_DEPRIEST)
    assert fix is not None and fix.sentence == "RMC"
    assert fix.lat == pytest.approx(48 + 7.038 / 60, abs=1e-12)
    assert fix.lon == pytest.approx(11 + 31.0 / 60, abs=1e-12)
    assert fix.speed_kmh == pytest.approx(22.4 * 1.852)
    assert fix.heading_deg == 84.4
    assert fix.t_ms == int(dt.datetime(1994, 3, 23, 12, 35, 19, tzinfo=dt.UTC).timestamp()) * 1000


def test_gga_published_examples() -> None:
    fix = decode_sentence(GGA_DEPRIEST)
    assert fix is not None and fix.sentence == "GGA"
    assert (fix.lat, fix.lon) == pytest.approx((48.1173, 11.516666666666667))
    assert fix.speed_kmh is None and fix.t_ms is None
    south = decode_sentence(GGA_PYNMEA2)
    assert south is not None
    assert south.lat == pytest.approx(-(19 + 29.045 / 60))
    assert south.lon == pytest.approx(24 + 10.506 / 60)


def test_checksum_matches_published_value() -> None:
    body = RMC_DEPRIEST[1 : RMC_DEPRIEST.index(b"*")].decode()
    assert checksum(body) == "6A"


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "BD", "QZ"])
def test_any_talker(talker: str) -> None:
    body = RMC_DEPRIEST[3 : RMC_DEPRIEST.index(b"*")].decode()
    fix = decode_sentence(sentence(talker + body))
    assert fix is not None and fix.lat == pytest.approx(48.1173)


def test_bad_checksum_is_rejected_with_reason() -> None:
    with pytest.raises(DecodeError) as err:
        decode_sentence(RMC_DEPRIEST.replace(b"*6A", b"*6B"))
    assert err.value.reason == "bad_checksum"


def test_missing_checksum_is_truncated() -> None:
    with pytest.raises(DecodeError) as err:
        decode_sentence(b"$GPRMC,123519,A,4807.038,N,011")
    assert err.value.reason == "truncated"


def test_no_fix_and_other_types_are_skipped() -> None:
    assert decode_sentence(sentence("GPRMC,123519,V,,,,,,,230394,,,N")) is None
    assert decode_sentence(sentence("GPGGA,123519,4807.038,N,01131.000,E,0,00,,,M,,M,,")) is None
    assert decode_sentence(sentence("GPGSV,1,1,01,05,45,120,40")) is None
    assert decode_sentence(sentence("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K")) is None
    assert decode_sentence(sentence("GPZZZ,1,2")) is None  # type pynmea2 does not know


def test_fix_without_position_is_an_error() -> None:
    with pytest.raises(DecodeError):
        decode_sentence(sentence("GPRMC,123519,A,,,,,022.4,084.4,230394,,,A"))


def test_noise_and_long_lines() -> None:
    with pytest.raises(DecodeError) as err:
        decode_sentence(b"\x00\xffGARBAGE")
    assert err.value.reason == "noise"
    with pytest.raises(DecodeError) as err:
        decode_sentence(b"$" + b"A" * 200)
    assert err.value.reason == "too_long"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=140))
def test_fuzz_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_sentence(data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.,ANSEWVGPRMCQZ-", max_size=80))
def test_fuzz_valid_checksum_junk_fields(body: str) -> None:
    # The checksum passes, so this exercises the field parsing behind it.
    for head in ("GPRMC,", "GNGGA,"):
        try:
            fix = decode_sentence(sentence(head + body))
        except DecodeError:
            continue
        if fix is not None:
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
