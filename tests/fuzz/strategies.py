"""Hypothesis strategies for hostile contract v1 payloads.

Values are drawn mostly near or beyond the contract's limits, ids and strings mostly
from characters that mean something to line protocol, InfluxQL, MQTT topics or JSON.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from hypothesis import strategies as st

from contract.ids import STRICT_ID_PATTERN
from contract.schema import KINDS, MAX_READINGS


class Case(NamedTuple):
    """A payload as received on ``.../telemetry/{kind}/{device_id}``."""

    kind: str
    device_id: str
    payload: bytes
    must_accept: bool  # built strictly within the contract


#: A fixed "now" so the oracle and the decoder agree on the time window.
NOW_MS = 1_760_000_000_000
DAY_MS = 24 * 3600 * 1000

_SPECIAL = ",= \"\\\n\r\t#+/$\x00\x7f\x85\u2028\ufeff'`;{}[]:"
nasty_text = st.text(alphabet=st.sampled_from(_SPECIAL) | st.characters(), max_size=20)
valid_id = st.from_regex(STRICT_ID_PATTERN, fullmatch=True)
ids = st.one_of(valid_id, valid_id, valid_id, nasty_text)

# Free text for trip ids: printable, quotes, backslashes, non-ASCII line separators.
trip_text = st.text(
    alphabet=st.sampled_from('"\\ ,=\u2028\u0085\ufeff') | st.characters(exclude_categories=["Cs"]),
    min_size=0,
    max_size=40,
)

finite = st.floats(allow_nan=False, allow_infinity=False)
wild_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), finite, nasty_text, st.just([]), st.just({})
)


def number(lo: float, hi: float) -> st.SearchStrategy[Any]:
    """Mostly in range (bounds included), sometimes just outside, sometimes wild."""
    inside = st.floats(min_value=lo, max_value=hi, allow_nan=False)
    edges = st.sampled_from(
        [lo, hi, 0.0, -0.0, 5e-324, lo - 1e-9 * abs(lo or 1), hi * 1.0000001 + 1e-9]
    )
    return st.one_of(inside, inside, inside, edges, st.integers(int(lo), int(hi)), wild_scalar)


times = st.one_of(
    st.integers(NOW_MS - 30 * DAY_MS, NOW_MS + 5 * 60 * 1000),
    st.integers(NOW_MS - 30 * DAY_MS, NOW_MS + 5 * 60 * 1000),
    st.integers(-(2**64), 2**64),
    wild_scalar,
)


def _fields(valid: bool) -> dict[str, dict[str, st.SearchStrategy[Any]]]:
    """Per-kind field strategies: strictly valid ones, or hostile ones."""

    def num(lo: float, hi: float) -> st.SearchStrategy[Any]:
        if valid:
            return st.one_of(
                st.floats(min_value=lo, max_value=hi, allow_nan=False),
                st.sampled_from([lo, hi, 0.0, -0.0, 5e-324, 1e-310, hi / 3]).filter(
                    lambda v: lo <= v <= hi
                ),
            )
        return number(lo, hi)

    def of(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return good if valid else st.one_of(good, good, wild_scalar)

    return {
        "energy_meter": {
            "power_w": num(-1e9, 1e9),
            "energy_import_kwh": num(0, 1e12),
            "energy_export_kwh": num(0, 1e12),
            "voltage_v": num(0, 1e6),
            "current_a": num(-1e6, 1e6),
        },
        "wearable": {
            "heart_rate_bpm": num(0, 300),
            "spo2_pct": num(0, 100),
            "skin_temp_c": num(-50, 100),
            "steps": of(st.integers(0, 10**9)),
            "battery_pct": num(0, 100),
            "fall": of(st.booleans()),
        },
        "bus": {
            "lat": num(-90, 90),
            "lon": num(-180, 180),
            "route_id": valid_id if valid else ids,
            "speed_kmh": num(0, 400),
            "heading_deg": num(0, 360),
            "trip_id": valid_trip if valid else st.one_of(trip_text, wild_scalar),
            "occupancy_pct": num(0, 100),
        },
    }


valid_trip = st.text(
    alphabet=st.sampled_from('"\\ ,=\u2028\u0085\ufeff#')
    | st.characters(exclude_categories=["Cs", "Cc"]),
    min_size=1,
    max_size=40,
)
_VALID, _HOSTILE = _fields(True), _fields(False)
_REQUIRED = {
    "energy_meter": {"power_w"},
    "wearable": {"heart_rate_bpm"},
    "bus": {"lat", "lon", "route_id"},
}
valid_times = st.integers(NOW_MS - 30 * DAY_MS, NOW_MS + 5 * 60 * 1000)


@st.composite
def reading(draw: st.DrawFn, kind: str, valid: bool) -> dict[str, Any]:
    fields = _VALID[kind] if valid else _HOSTILE[kind]
    present = draw(st.sets(st.sampled_from(sorted(fields))))
    if valid:
        present |= _REQUIRED[kind]
    r: dict[str, Any] = {"t": draw(valid_times if valid else times)}
    for name in sorted(present):
        r[name] = draw(fields[name])
    if not valid and draw(st.integers(0, 5)) == 0:
        r[draw(nasty_text)] = draw(wild_scalar)  # unknown key
    return r


@st.composite
def valid_message(draw: st.DrawFn) -> Case:
    """A message that must be accepted (ids, ranges and times all within the contract)."""
    kind = draw(st.sampled_from(KINDS))
    device_id = draw(valid_id)
    body = {
        "device_id": device_id,
        "kind": kind,
        "site": draw(valid_id),
        "seq": draw(st.integers(0, 2**63 - 1)),
        "readings": draw(st.lists(reading(kind, True), min_size=1, max_size=4)),
    }
    return Case(kind, device_id, json.dumps(body).encode(), must_accept=True)


@st.composite
def hostile_message(draw: st.DrawFn) -> Case:
    """(topic kind, topic device id, JSON payload) for a probably broken message."""
    kind = draw(st.sampled_from(KINDS))
    device_id = draw(ids)
    body: dict[str, Any] = {
        "device_id": device_id if draw(st.integers(0, 5)) else draw(ids),
        "kind": kind if draw(st.integers(0, 5)) else draw(st.sampled_from([*KINDS, "x"])),
        "site": draw(ids),
        "seq": draw(st.one_of(st.integers(0, 2**63 - 1), st.integers(), wild_scalar)),
        "readings": draw(st.lists(reading(kind, False), min_size=0, max_size=4)),
    }
    if draw(st.integers(0, 10)) == 0:
        body["readings"] = [body["readings"][0] if body["readings"] else {}] * (MAX_READINGS + 1)
    if draw(st.booleans()):
        body.pop(draw(st.sampled_from(sorted(body))), None)
    topic_kind = kind if draw(st.integers(0, 5)) else draw(st.sampled_from([*KINDS, "nope"]))
    return Case(topic_kind, device_id, json.dumps(body).encode(), must_accept=False)


message = st.one_of(valid_message(), hostile_message())


@st.composite
def near_miss(draw: st.DrawFn) -> tuple[Case, set[str]]:
    """A valid message with exactly one defect, and the reasons it may be rejected for."""
    case = draw(valid_message())
    body = json.loads(case.payload)
    defect = draw(st.sampled_from(["device", "kind", "time", "range", "oversize", "unknown"]))
    kind, device_id = case.kind, case.device_id
    if defect == "device":
        device_id = draw(valid_id.filter(lambda d: d != case.device_id))
        reason = "topic_mismatch"
    elif defect == "kind":
        kind = draw(st.sampled_from([k for k in KINDS if k != case.kind]))
        # The other kind's decoder may already fail on the fields (schema); if it does
        # not, the envelope's kind disagrees with the topic.
        reason = "schema|topic_mismatch"
    elif defect == "time":
        body["readings"][-1]["t"] = draw(
            st.sampled_from([NOW_MS - 30 * DAY_MS - 1, NOW_MS + 5 * 60 * 1000 + 1, 0])
        )
        reason = "time_range"
    elif defect == "range":
        body["seq"] = -1
        reason = "schema"
    elif defect == "oversize":
        # Trailing whitespace keeps it valid JSON: the size limit alone must catch it.
        return Case(kind, device_id, case.payload + b" " * (256 * 1024), False), {"oversize"}
    else:
        return Case("x" + kind, device_id, case.payload, False), {"unknown_kind"}
    return Case(kind, device_id, json.dumps(body).encode(), False), set(reason.split("|"))
