"""Serial gateway line framing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.base import DecodeError
from firmware_bridge.ble_gateway.framing import decode_line, encode_line, normalize_mac


def test_documented_example() -> None:
    # The example line in framing.py's docstring; checksum computed by hand:
    # XOR of "AA:BB:CC:DD:EE:FF 2A37 1648" = 0x46.
    note = decode_line(b"AA:BB:CC:DD:EE:FF 2A37 1648*46\r\n")
    assert (note.mac, note.uuid16, note.payload) == ("AABBCCDDEEFF", 0x2A37, b"\x16\x48")
    assert (
        encode_line("aa:bb:cc:dd:ee:ff", 0x2A37, b"\x16\x48")
        == b"AA:BB:CC:DD:EE:FF 2A37 1648*46\r\n"
    )


@pytest.mark.parametrize(
    "line,reason",
    [
        (b"AA:BB:CC:DD:EE:FF 2A37 1648*47\r\n", "bad_checksum"),
        (b"AA:BB:CC:DD:EE:FF 2A37 16", "truncated"),
        (b"\x00\xfe garbage\r\n", "noise"),
        (b"AA:BB:CC:DD:EE:FF 2A37 164*4C\r\n", "noise"),  # odd hex digit count
        (b"AA:BB:CC:DD:EE:FF 2A37 " + b"00" * 200 + b"*00\r\n", "too_long"),
    ],
)
def test_bad_lines(line: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_line(line)
    assert err.value.reason == reason


def test_normalize_mac() -> None:
    assert normalize_mac("aa-bb-cc-dd-ee-ff") == "AABBCCDDEEFF"
    with pytest.raises(ValueError):
        normalize_mac("AABBCCDDEE")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_line(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100), st.integers(0, 0xFFFF))
def test_roundtrip(payload: bytes, uuid16: int) -> None:
    note = decode_line(encode_line("C0FFEE000001", uuid16, payload))
    assert (note.mac, note.uuid16, note.payload) == ("C0FFEE000001", uuid16, payload)
