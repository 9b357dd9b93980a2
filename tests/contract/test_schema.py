"""Contract v1 validation: each bad input class is refused with its reason."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.schema import Limits, Reason, Rejected, decode_message
from contract.topics import Topics

NOW = int(time.time() * 1000)


def payload(**over: object) -> bytes:
    msg: dict[str, object] = {
        "device_id": "m1",
        "kind": "energy_meter",
        "site": "kita",
        "seq": 1,
        "readings": [{"t": NOW, "power_w": 10}],
    }
    msg.update(over)
    return json.dumps(msg).encode()


def reason_of(p: bytes, kind: str = "energy_meter", dev: str = "m1") -> Reason:
    with pytest.raises(Rejected) as exc:
        decode_message(kind, dev, p, NOW)
    return exc.value.reason


def test_valid() -> None:
    m = decode_message("energy_meter", "m1", payload(), NOW)
    assert m.readings[0].power_w == 10.0


@pytest.mark.parametrize(
    ("p", "reason"),
    [
        (b"{not json", Reason.INVALID_JSON),
        (b"\xff\xfe", Reason.INVALID_JSON),
        (b'{"device_id": "\xff"}', Reason.INVALID_JSON),
        (b"[]", Reason.SCHEMA),
        (payload(readings=[]), Reason.SCHEMA),
        (payload(readings=[{"t": NOW}]), Reason.SCHEMA),
        (payload(readings=[{"t": NOW, "power_w": "10"}]), Reason.SCHEMA),
        (
            b'{"device_id":"m1","kind":"energy_meter","site":"kita","seq":1,"readings":[{"t":1,"power_w":1e400}]}',
            Reason.SCHEMA,
        ),
        (payload(seq=-1), Reason.SCHEMA),
        (payload(site="kita\n"), Reason.SCHEMA),
        (payload(site="a,b=c"), Reason.SCHEMA),
        (payload(device_id="m2"), Reason.TOPIC_MISMATCH),
        (payload(kind="bus"), Reason.TOPIC_MISMATCH),
        (payload(readings=[{"t": NOW - 31 * 86400_000, "power_w": 1}]), Reason.TIME_RANGE),
        (payload(readings=[{"t": NOW + 301_000, "power_w": 1}]), Reason.TIME_RANGE),
        (payload(readings=[{"t": NOW, "power_w": 1}] * 1001), Reason.SCHEMA),
        (b" " * (256 * 1024 + 1), Reason.OVERSIZE),
    ],
)
def test_rejections(p: bytes, reason: Reason) -> None:
    assert reason_of(p) == reason


def test_wearable_needs_a_measurement() -> None:
    p = json.dumps(
        {"device_id": "w", "kind": "wearable", "site": "s", "seq": 0, "readings": [{"t": NOW}]}
    ).encode()
    assert reason_of(p, "wearable", "w") == Reason.SCHEMA


def test_unknown_kind() -> None:
    assert reason_of(payload(kind="toaster"), "toaster") == Reason.UNKNOWN_KIND


def test_limits_are_configurable() -> None:
    p = payload(readings=[{"t": NOW - 3_600_000, "power_w": 1}])
    with pytest.raises(Rejected):
        decode_message("energy_meter", "m1", p, NOW, Limits(max_past_ms=60_000))


@given(st.binary(max_size=300))
def test_any_bytes_reject_cleanly(data: bytes) -> None:
    try:
        decode_message("energy_meter", "m1", data, NOW)
    except Rejected as exc:
        assert isinstance(exc.reason, Reason)


def test_topics() -> None:
    t = Topics("city")
    assert t.telemetry("bus", "b-1") == "city/v1/telemetry/bus/b-1"
    assert t.parse_telemetry("city/v1/telemetry/bus/b-1") == ("bus", "b-1")
    for bad in ("city/v1/telemetry/bus/b 1", "city/v1/telemetry/bus/+", "city/v1/telemetry/bus"):
        assert t.parse_telemetry(bad) is None
    with pytest.raises(ValueError):
        t.telemetry("bus", "#")
    with pytest.raises(ValueError):
        Topics("city/#")


def test_energy_readings_are_checked_one_by_one_for_the_first_bad_one() -> None:
    """power_w is required unless a reading is fixed-time, and fixed-time readings sit on
    :00/:30; the error names the first reading that breaks either rule."""
    slot = NOW - NOW % (30 * 60 * 1000)
    fixed_ok = {"t": slot, "fixed_import_kwh": 12.5}
    good = [{"t": NOW, "power_w": 1.0}, fixed_ok, {"t": NOW, "power_w": 2.0}]
    assert len(decode_message("energy_meter", "m1", payload(readings=good), NOW).readings) == 3
    cases = [
        ([*good, {"t": NOW, "voltage_v": 101.0}], "readings[3] has no power_w"),
        ([*good, {"t": slot + 1, "fixed_export_kwh": 1.0, "power_w": 3.0}], "readings[3] is a"),
        ([{"t": NOW, "power_w": 1.0}, {"t": NOW}, {"t": slot + 1, "fixed_import_kwh": 1.0}],
         "readings[1] has no power_w"),
    ]  # fmt: skip
    for readings, detail in cases:
        with pytest.raises(Rejected) as exc:
            decode_message("energy_meter", "m1", payload(readings=readings), NOW)
        assert exc.value.reason == Reason.SCHEMA
        assert exc.value.detail.startswith(detail), exc.value.detail
