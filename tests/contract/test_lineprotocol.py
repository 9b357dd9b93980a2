"""The line-protocol serializer: exact escaping, checked against a real influxd."""

from __future__ import annotations

import itertools
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.influx import InfluxV1
from contract.lineprotocol import (
    SerializeError,
    _json_lines,
    format_value,
    line,
    message_lines,
    reference_lines,
)
from contract.schema import EnergyMessage, EnergyReading, Limits, decode_message, make_message
from tests.fuzz.strategies import NOW_MS, Case, valid_message

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


# Floats where msgspec's JSON and repr() write different text (exponents, 1e-5..1e-4,
# NaN/inf), next to ordinary ones: the fast path must notice and agree with the reference.
awkward_float = st.one_of(
    st.floats(),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.sampled_from([0.0, -0.0, 1e-5, -5e-5, 1e-4, 2e-7, 1e16, -1.5e17, 12.00001, 1e-300]),
)
energy_field = st.sampled_from(
    ["power_w", "energy_import_kwh", "voltage_v", "current_l2_a", "power_l3_w", "fixed_export_kwh"]
)


def _lines_or_error(fn: object, msg: object) -> object:
    try:
        return fn(msg)  # type: ignore[operator]
    except SerializeError as exc:
        return ("SerializeError", str(exc))


@settings(max_examples=400, deadline=None)
@given(case=valid_message())
def test_fast_path_equals_reference_on_valid_messages(case: Case) -> None:
    """Whatever the contract accepts, message_lines (msgspec's JSON for energy meters)
    writes byte for byte what the per-field reference formatter writes."""
    msg = decode_message(case.kind, case.device_id, case.payload, NOW_MS, Limits())
    assert message_lines(msg) == reference_lines(msg)


@settings(max_examples=400, deadline=None)
@given(
    readings=st.lists(
        st.dictionaries(energy_field, awkward_float | st.none(), min_size=1),
        min_size=1,
        max_size=5,
    ),
    seq=st.integers(0, 2**63 - 1),
)
def test_fast_path_equals_reference_on_any_floats(
    readings: list[dict[str, float | None]], seq: int
) -> None:
    """Hand-built readings (no range checks: tiny, huge, NaN, inf) take the same text,
    or the same refusal, on both paths."""
    rs = [EnergyReading(t=1_000 + i, **r) for i, r in enumerate(readings)]  # type: ignore[arg-type]
    msg = EnergyMessage(device_id="m-1", kind="energy_meter", site="s 1", seq=seq, readings=rs)
    assert _lines_or_error(message_lines, msg) == _lines_or_error(reference_lines, msg)


def test_fast_path_is_taken_for_energy_meters_and_left_for_odd_values() -> None:
    ok = make_message("energy_meter", "m1", "kita", 3, [{"t": 5, "power_w": 1.5}])
    assert _json_lines(list(ok.readings), "h ", "seq=3i ") == ["h power_w=1.5,seq=3i 5"]
    for odd in (1e-5, 2e-7, 1e16, math.nan, True, "1.0"):
        r = EnergyReading(t=5, power_w=odd)  # type: ignore[arg-type]
        assert _json_lines([r], "h ", "seq=3i ") is None, odd
