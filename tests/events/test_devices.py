"""Device problems: silent, battery low, off body (the tracker on its own)."""

from __future__ import annotations

from contract.schema import WearableReading
from ingest.events.devices import DeviceRules, DeviceTracker


def r(t: int, **kw: object) -> WearableReading:
    return WearableReading(t=t, **kw)  # type: ignore[arg-type]


def test_silence_opens_at_a_derived_time_and_closes_on_the_next_reading() -> None:
    d = DeviceTracker(DeviceRules(silent_after_s=600))
    assert d.process("w1", "s", [r(1_000, heart_rate_bpm=70)]) == []
    assert d.silent(1_000 + 599_999) == []
    (ev,) = d.silent(1_000 + 600_000)
    assert (ev.type, ev.state, ev.episode_ms, ev.measurement) == (
        "silent",
        "open",
        601_000,
        "device_alert",
    )
    other = DeviceTracker(DeviceRules(silent_after_s=600))  # a second worker agrees
    other.process("w1", "s", [r(1_000, heart_rate_bpm=70)])
    assert other.silent(10**7)[0].episode_ms == ev.episode_ms
    assert d.silent(10**7) == []  # once per episode
    (closed,) = d.process("w1", "s", [r(900_000, steps=5)])
    assert (closed.state, closed.episode_ms) == ("closed", 601_000)


def test_battery_low_has_hysteresis_and_off_body_follows_the_flag() -> None:
    d = DeviceTracker(DeviceRules(battery_low_pct=15))
    evs = d.process(
        "w1", "s", [r(1, battery_pct=14.0), r(2, battery_pct=16.0), r(3, battery_pct=20.0)]
    )
    assert [(e.type, e.state) for e in evs] == [("battery_low", "open"), ("battery_low", "closed")]
    evs = d.process("w1", "s", [r(4, off_body=True), r(5, off_body=True), r(6, off_body=False)])
    assert [(e.type, e.state, e.episode_ms) for e in evs] == [
        ("off_body", "open", 4),
        ("off_body", "closed", 4),
    ]
    assert d.process("w1", "s", [r(5, off_body=True)]) == []  # redelivered: skipped


def test_off_body_alone_is_a_valid_reading_and_is_stored_as_a_boolean() -> None:
    import json

    from contract.lineprotocol import message_lines
    from contract.schema import decode_message

    raw = {"device_id": "w1", "kind": "wearable", "site": "s", "seq": 3,
           "readings": [{"t": 1_000, "off_body": True}]}  # fmt: skip
    msg = decode_message("wearable", "w1", json.dumps(raw).encode(), 1_000)
    assert message_lines(msg) == ["wearable,device_id=w1,site=s off_body=true,seq=3i 1000"]
