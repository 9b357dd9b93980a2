"""The line-protocol serializer: exact escaping, checked against a real influxd."""

from __future__ import annotations

import itertools
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.influx import InfluxV1
from contract.lineprotocol import SerializeError, format_value, line, message_lines
from contract.schema import make_message

# Text InfluxDB can carry in a tag: anything but line breaks and backslashes (refused).
tag_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\\", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "" and not s.startswith("#"))
str_field = st.text(
    alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=60
)
_ts = itertools.count(1_000_000)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tag=tag_text, text=str_field, number=st.floats(allow_nan=False, allow_infinity=False))
def test_round_trip_through_real_influxd(
    influx: InfluxV1, tag: str, text: str, number: float
) -> None:
    """Whatever the tag and string values, InfluxDB stores exactly one point with exactly
    those values: nothing can add a tag, a field or a line."""
    ts = next(_ts)
    body = line("rt", {"tg": tag, "other": "x"}, {"s": text, "f": number, "n": 7}, ts)
    assert body.count("\n") == 0
    r = influx.write_lines(body.encode())
    assert r.status_code == 204, (body, r.text)
    rows = influx.rows(f"SELECT * FROM rt WHERE time = {ts}ms")
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"time", "tg", "other", "s", "f", "n"}
    assert (row["tg"], row["other"], row["s"], row["n"]) == (tag, "x", text, 7)
    assert math.isclose(row["f"], number, rel_tol=1e-15, abs_tol=0) or row["f"] == number


@given(st.text(max_size=10), st.sampled_from("\n\r\\"), st.text(max_size=10))
def test_unrepresentable_tags_are_refused(head: str, bad: str, tail: str) -> None:
    value = head + bad + tail
    with pytest.raises(SerializeError):
        line("m", {"tag": value}, {"f": 1.0}, 1)
    with pytest.raises(SerializeError):
        line("m", {value: "v"}, {"f": 1.0}, 1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(SerializeError):
        format_value(value)


def test_field_types_are_explicit() -> None:
    assert format_value(True) == "true"
    assert format_value(3) == "3i"
    assert format_value(3.0) == "3.0"
    assert format_value('a"b\\') == '"a\\"b\\\\"'


def test_message_lines_schema() -> None:
    now = int(time.time() * 1000)
    msg = make_message(
        "bus",
        "bus-1",
        "ekimae",
        41,
        [
            {
                "t": now,
                "lat": 34.7,
                "lon": 137.4,
                "route_id": "R1",
                "trip_id": 'x "y"',
                "speed_kmh": 20,
            }
        ],
    )
    assert message_lines(msg) == [
        f"bus,device_id=bus-1,route_id=R1,site=ekimae lat=34.7,lon=137.4,speed_kmh=20.0,"
        f'trip_id="x \\"y\\"",seq=41i {now}'
    ]
    em = make_message("energy_meter", "m1", "kita", 0, [{"t": now, "power_w": -5}])
    assert message_lines(em) == [f"energy_meter,device_id=m1,site=kita power_w=-5.0,seq=0i {now}"]
