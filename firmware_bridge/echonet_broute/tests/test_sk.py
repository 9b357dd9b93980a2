"""ERXUDP parsing in the BP35A1 and BP35C0 layouts."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.base import DecodeError
from firmware_bridge.echonet_broute.sk import parse_epandesc, parse_erxudp

DATA = "1081000102880105FF017201E70400000278"
# The BP35A1 capture quoted in public repositories ("... 0E1A 0E1A 001C6400601421A3 1
# 0012 <data>"); the two elided IPv6 addresses are filled in with link-local examples.
SRC, DST = "FE80:0000:0000:0000:021C:6400:6014:21A3", "FE80:0000:0000:0000:021D:1290:1234:5678"
A1 = f"ERXUDP {SRC} {DST} 0E1A 0E1A 001C6400601421A3 1 0012 {DATA}"
C0 = f"ERXUDP {SRC} {DST} 0E1A 0E1A 001C6400601421A3 1 0 0012 {DATA}"
C0_LQI = f"ERXUDP {SRC} {DST} 0E1A 0E1A 001C6400601421A3 E1 1 0 0012 {DATA}"


@pytest.mark.parametrize("line,side,lqi", [(A1, None, None), (C0, 0, None), (C0_LQI, 0, 0xE1)])
def test_layouts(line: str, side: int | None, lqi: int | None) -> None:
    rx = parse_erxudp(line)
    assert (rx.rport, rx.lport, rx.secured, rx.side, rx.lqi) == (0x0E1A, 0x0E1A, 1, side, lqi)
    assert rx.sender == SRC and rx.sender_lla == "001C6400601421A3"
    assert rx.data == bytes.fromhex(DATA)


@pytest.mark.parametrize(
    "line,reason",
    [
        (A1.replace(" 0012 ", " 0013 "), "bad_length"),
        (A1.rsplit(" ", 1)[0], "truncated"),
        ("ERXUDP", "truncated"),
        (A1.replace("0E1A 0E1A", "0E1A ZZZZ"), "malformed"),
        ("EVENT 21 FE80::1 00", "noise"),
    ],
)
def test_bad_lines(line: str, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        parse_erxudp(line)
    assert err.value.reason == reason


def test_epandesc() -> None:
    desc = parse_epandesc(
        [
            "  Channel:21",
            "  Channel Page:09",
            "  Pan ID:8888",
            "  Addr:00135000ABCD1234",
            "  LQI:E1",
            "  PairID:00AABBCC",
        ]
    )
    assert (desc["Channel"], desc["Pan ID"], desc["Addr"]) == ("21", "8888", "00135000ABCD1234")
    with pytest.raises(DecodeError):
        parse_epandesc(["  Channel:21"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789ABCDEFZ:", max_size=12), max_size=12))
def test_fuzz(tokens: list[str]) -> None:
    with contextlib.suppress(DecodeError):
        parse_erxudp(" ".join(["ERXUDP", *tokens]))
