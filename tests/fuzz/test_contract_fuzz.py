"""Fuzz the contract's decoder and serializer; accepted messages go to the REAL influxd.

Property: every payload is either rejected with a :class:`Reason`, or every one of its
readings becomes exactly one line that influxd accepts and that reads back with exactly
the tags and fields given -- no value can add a tag, a field or a line.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.influx import InfluxV1, quote_ident
from contract.lineprotocol import message_lines
from contract.schema import (
    READING_TAGS,
    Message,
    Reason,
    Rejected,
    decode_message,
    encode_message,
    make_message,
)
from contract.topics import Topics

from .strategies import NOW_MS, Case, message, near_miss

Key = tuple[str, tuple[tuple[str, str], ...], int]


def _decode(kind: str, device_id: str, payload: bytes) -> Message | Reason:
    try:
        return decode_message(kind, device_id, payload, NOW_MS)
    except Rejected as exc:
        assert isinstance(exc.reason, Reason) and exc.detail
        return exc.reason


def _expected(msg: Message) -> list[tuple[Key, dict[str, Any]]]:
    out: list[tuple[Key, dict[str, Any]]] = []
    for r in msg.readings:
        tag_names = READING_TAGS[msg.kind]
        tags = {"device_id": msg.device_id, "site": msg.site}
        tags.update({k: getattr(r, k) for k in tag_names})
        fields = {
            k: getattr(r, k)
            for k in r.__struct_fields__
            if k != "t" and k not in tag_names and getattr(r, k) is not None
        }
        fields["seq"] = msg.seq
        out.append(((msg.kind, tuple(sorted(tags.items())), r.t), fields))
    return out


@pytest.mark.integration
def test_accepted_payloads_store_exactly_their_fields(influx: InfluxV1) -> None:
    stored: dict[Key, dict[str, Any]] = {}
    lines: list[str] = []
    reasons: set[Reason] = set()
    accepted: list[Message] = []

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(message)
    def run(case: Case) -> None:
        result = _decode(case.kind, case.device_id, case.payload)
        if isinstance(result, Reason):
            assert not case.must_accept, f"valid message rejected ({result}): {case!r}"
            reasons.add(result)
            return
        produced = message_lines(result)
        assert len(produced) == len(result.readings)
        assert all("\n" not in ln and "\r" not in ln for ln in produced)
        accepted.append(result)
        # A point with an identity seen before merges into it, as InfluxDB documents
        # (union of fields, the newer value wins): that is what makes redelivery
        # idempotent. Readings with one t in one message merge the same way.
        for key, fields in _expected(result):
            stored[key] = {**stored.get(key, {}), **fields}
        lines.extend(produced)

    run()
    assert len(accepted) > 200, f"too few accepted messages to mean anything ({len(accepted)})"
    assert {Reason.SCHEMA, Reason.UNKNOWN_KIND} <= reasons
    _write_all(influx, lines)
    assert _read_back(influx) == stored


def _write_all(influx: InfluxV1, lines: list[str]) -> None:
    for i in range(0, len(lines), 2000):
        chunk = lines[i : i + 2000]
        r = influx.write_lines("\n".join(chunk).encode())
        if r.status_code != 204:  # find the culprit so the failure names it
            for ln in chunk:
                one = influx.write_lines(ln.encode())
                assert one.status_code == 204, f"influxd refused {ln!r}: {one.text}"
            raise AssertionError(f"batch refused but every line alone passed: {r.text}")


def _read_back(influx: InfluxV1) -> dict[Key, dict[str, Any]]:
    got: dict[Key, dict[str, Any]] = {}
    for kind in ("energy_meter", "wearable", "bus"):
        for s in influx.query(f"SELECT * FROM {quote_ident(kind)} GROUP BY *"):
            tags = tuple(sorted((k, v) for k, v in s["tags"].items() if v != ""))
            cols = s["columns"]
            for row in s["values"]:
                rec = dict(zip(cols, row, strict=True))
                t = rec.pop("time")
                key = (kind, tags, t)
                assert key not in got, f"duplicate point {key}"
                got[key] = {k: v for k, v in rec.items() if v is not None}
    return got


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_miss())
def test_single_defects_are_rejected_for_the_right_reason(case: tuple[Case, set[str]]) -> None:
    msg, reasons = case
    result = _decode(msg.kind, msg.device_id, msg.payload)
    assert isinstance(result, Reason) and result.value in reasons, (result, reasons)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["energy_meter", "wearable", "bus", "x"]))
def test_random_bytes_are_rejected_with_a_reason(payload: bytes, kind: str) -> None:
    result = _decode(kind, "dev-1", payload)
    assert isinstance(result, Reason)


_SEEDS = [
    make_message(
        "energy_meter", "m-1", "s1", 7, [{"t": NOW_MS, "power_w": 1.5, "voltage_v": 101.2}]
    ),
    make_message(
        "wearable", "w-1", "home", 1, [{"t": NOW_MS, "heart_rate_bpm": 70, "fall": False}]
    ),
    make_message(
        "bus",
        "b-1",
        "r",
        2,
        [{"t": NOW_MS, "lat": 35.1, "lon": 139.2, "route_id": "r1", "trip_id": 'a"b'}],
    ),
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = rng.choice(
                [b",", b"\\n", b'"', b"\\", b"=", b" ", b"\x00", b"\xff", b"1e999", b"-"]
            )
        elif op == 2 and b:
            del b[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            b = b[:pos]
        else:
            src = rng.choice(_SEEDS)
            chunk = encode_message(src)
            start = rng.randrange(len(chunk))
            b[pos:pos] = chunk[start : start + rng.randint(1, 20)]
    return bytes(b)


def test_mutated_valid_payloads_never_crash() -> None:
    """5,000 byte-level mutations of valid payloads: rejected with a reason or serializable."""
    rng = random.Random(1234)
    outcomes: dict[str, int] = {}
    for i in range(5000):
        seed = _SEEDS[i % len(_SEEDS)]
        payload = _mutate(rng, encode_message(seed))
        result = _decode(seed.kind, seed.device_id, payload)
        if isinstance(result, Reason):
            outcomes[result.value] = outcomes.get(result.value, 0) + 1
        else:
            lines = message_lines(result)
            assert len(lines) == len(result.readings) and all("\n" not in ln for ln in lines)
            outcomes["accepted"] = outcomes.get("accepted", 0) + 1
    assert outcomes.get("invalid_json", 0) > 1000 and outcomes.get("accepted", 0) > 10, outcomes


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=12), st.sampled_from(["+", "#", "", "v1", "telemetry"])),
        max_size=7,
    )
)
def test_topic_parser_yields_only_valid_ids(levels: list[str]) -> None:
    t = Topics("city")
    topic = "city/v1/telemetry/" + "/".join(levels)
    parsed = t.parse_telemetry(topic)
    if parsed is not None:
        kind, device_id = parsed
        assert t.telemetry(kind, device_id) == topic  # round-trips: no extra level or wildcard


@pytest.mark.parametrize(
    "payload",
    [
        b'{"device_id":"m-1\x98","kind":"energy_meter"}',  # invalid UTF-8 inside a string
        b'{"\xff":1}',  # ... inside a key
        b"\xef\xbb\xbf{}",  # a BOM
        b"[" * 100_000,  # deep nesting
        b'{"device_id":"m-1","device_id":"m-2"}',  # duplicate keys
    ],
)
def test_byte_level_oddities_are_rejected(payload: bytes) -> None:
    # The first two once escaped decode_message as UnicodeDecodeError, which would have
    # killed ingest's MQTT network thread (paho re-raises callback exceptions).
    assert isinstance(_decode("energy_meter", "m-1", payload), Reason)
