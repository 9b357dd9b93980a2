"""Payload schema of contract v1 and its validation.

Validation is done by msgspec in C: types, ranges, id patterns and list lengths are
checked while decoding, so a bad payload costs no more than a good one.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from contract.ids import STRICT_ID_PATTERN

KINDS = ("energy_meter", "wearable", "bus")
Kind = Literal["energy_meter", "wearable", "bus"]

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_READINGS = 1000

Id = Annotated[str, msgspec.Meta(pattern=STRICT_ID_PATTERN)]
# Epoch milliseconds; the plausible window is checked against the clock after decoding.
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
# Ranges double as the "finite" rule: JSON has no NaN, and 1e400 (inf) fails them.
Watts = Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
Kwh = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Volts = Annotated[float, msgspec.Meta(ge=0, le=1e6)]
Amps = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]
Bpm = Annotated[float, msgspec.Meta(ge=0, le=300)]
Pct = Annotated[float, msgspec.Meta(ge=0, le=100)]
Celsius = Annotated[float, msgspec.Meta(ge=-50, le=100)]
Steps = Annotated[int, msgspec.Meta(ge=0, le=10**9)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Kmh = Annotated[float, msgspec.Meta(ge=0, le=400)]
Degrees = Annotated[float, msgspec.Meta(ge=0, le=360)]
# GTFS trip ids are free text; control characters are refused so a value stays on one line.
TripId = Annotated[str, msgspec.Meta(pattern=r"^[^\x00-\x1f\x7f]{1,128}\Z")]


class EnergyReading(msgspec.Struct, frozen=True, omit_defaults=True):
    """One energy-meter reading. ``power_w`` < 0 means export to the grid.

    Either an instantaneous reading (``power_w`` required) or a *fixed-time* reading: the
    meter's own cumulative energy at a half-hour boundary (``fixed_import_kwh`` /
    ``fixed_export_kwh``, ``t`` exactly on :00 or :30 UTC), which may come without
    ``power_w``. Per-phase fields are for three-phase meters.
    """

    t: EpochMs
    power_w: Watts | None = None
    energy_import_kwh: Kwh | None = None
    energy_export_kwh: Kwh | None = None
    voltage_v: Volts | None = None
    current_a: Amps | None = None
    voltage_l1_v: Volts | None = None
    voltage_l2_v: Volts | None = None
    voltage_l3_v: Volts | None = None
    current_l1_a: Amps | None = None
    current_l2_a: Amps | None = None
    current_l3_a: Amps | None = None
    power_l1_w: Watts | None = None
    power_l2_w: Watts | None = None
    power_l3_w: Watts | None = None
    fixed_import_kwh: Kwh | None = None
    fixed_export_kwh: Kwh | None = None


class WearableReading(msgspec.Struct, frozen=True, omit_defaults=True):
    """One care-wearable reading; at least one measurement must be present."""

    t: EpochMs
    heart_rate_bpm: Bpm | None = None
    spo2_pct: Pct | None = None
    skin_temp_c: Celsius | None = None
    steps: Steps | None = None
    battery_pct: Pct | None = None
    fall: bool | None = None
    #: The sensor reports it is not worn (contract v1, additive).
    off_body: bool | None = None


class BusReading(msgspec.Struct, frozen=True, omit_defaults=True):
    """One bus GPS fix (WGS84)."""

    t: EpochMs
    lat: Lat
    lon: Lon
    route_id: Id
    speed_kmh: Kmh | None = None
    heading_deg: Degrees | None = None
    trip_id: TripId | None = None
    occupancy_pct: Pct | None = None


Reading = EnergyReading | WearableReading | BusReading

READING_TYPES: dict[str, type[msgspec.Struct]] = {
    "energy_meter": EnergyReading,
    "wearable": WearableReading,
    "bus": BusReading,
}

#: Fields stored as InfluxDB tags rather than fields, per kind (besides device_id/site).
READING_TAGS: dict[str, tuple[str, ...]] = {
    "energy_meter": (),
    "wearable": (),
    "bus": ("route_id",),
}


class _Envelope(msgspec.Struct, frozen=True):
    device_id: Id
    kind: str
    site: Id
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class EnergyMessage(_Envelope, frozen=True):
    readings: Annotated[list[EnergyReading], msgspec.Meta(min_length=1, max_length=MAX_READINGS)]


class WearableMessage(_Envelope, frozen=True):
    readings: Annotated[list[WearableReading], msgspec.Meta(min_length=1, max_length=MAX_READINGS)]


class BusMessage(_Envelope, frozen=True):
    readings: Annotated[list[BusReading], msgspec.Meta(min_length=1, max_length=MAX_READINGS)]


Message = EnergyMessage | WearableMessage | BusMessage

MESSAGE_TYPES: dict[str, type[Message]] = {
    "energy_meter": EnergyMessage,
    "wearable": WearableMessage,
    "bus": BusMessage,
}

_DECODERS = {kind: msgspec.json.Decoder(t) for kind, t in MESSAGE_TYPES.items()}
_ENCODER = msgspec.json.Encoder()


class Reason(enum.StrEnum):
    """Why a message was rejected. The values are metric labels and dead-letter reasons."""

    BAD_TOPIC = "bad_topic"
    UNKNOWN_KIND = "unknown_kind"
    OVERSIZE = "oversize"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    TOPIC_MISMATCH = "topic_mismatch"
    TIME_RANGE = "time_range"
    DB_REJECTED = "db_rejected"
    #: Device binding (ingest with a registry, see docs/contract.md): the device id is
    #: not a registered device, is revoked, publishes another kind or claims another site.
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    WRONG_KIND = "wrong_kind"
    WRONG_SITE = "wrong_site"
    #: A bug in machi, not in the message; kept so that the message is not lost.
    INTERNAL = "internal_error"


class Rejected(Exception):
    """A message that breaks the contract. ``reason`` is a :class:`Reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """Acceptance window for reading timestamps, relative to the receiver's clock."""

    max_past_ms: int = 30 * 24 * 3600 * 1000
    max_future_ms: int = 5 * 60 * 1000
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


_T = operator.attrgetter("t")
_POWER = operator.attrgetter("power_w")
_FIXED = operator.attrgetter("fixed_import_kwh", "fixed_export_kwh")
_WEARABLE_MEASURES = (
    "heart_rate_bpm",
    "spo2_pct",
    "skin_temp_c",
    "steps",
    "battery_pct",
    "fall",
    "off_body",
)
#: Half-hour boundaries of fixed-time meter readings (Japan's demand period).
FIXED_PERIOD_MS = 30 * 60 * 1000


def _check_energy(i: int, r: EnergyReading) -> None:
    fixed = r.fixed_import_kwh is not None or r.fixed_export_kwh is not None
    if r.power_w is None and not fixed:
        raise Rejected(
            Reason.SCHEMA,
            f"readings[{i}] has no power_w; an energy_meter reading needs power_w unless it "
            "is a fixed-time reading (fixed_import_kwh / fixed_export_kwh)",
        )
    if fixed and r.t % FIXED_PERIOD_MS:
        raise Rejected(
            Reason.SCHEMA,
            f"readings[{i}] is a fixed-time reading but t={r.t} is not on a :00/:30 boundary",
        )


def decode_message(
    kind: str, device_id: str, payload: bytes, now_ms: int, limits: Limits = Limits()
) -> Message:
    """Decode and validate one telemetry payload received on ``.../{kind}/{device_id}``.

    Raises :class:`Rejected` with the reason and a message that says what to fix.
    """
    if len(payload) > limits.max_payload_bytes:
        raise Rejected(
            Reason.OVERSIZE,
            f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes}. "
            "Send fewer readings per message.",
        )
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise Rejected(Reason.UNKNOWN_KIND, f"kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        msg = decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise Rejected(Reason.SCHEMA, str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise Rejected(
            Reason.INVALID_JSON, f"{exc}; the payload must be a UTF-8 JSON object"
        ) from None
    if msg.kind != kind or msg.device_id != device_id:
        raise Rejected(
            Reason.TOPIC_MISMATCH,
            f"payload says kind={msg.kind!r} device_id={msg.device_id!r} but the topic says "
            f"kind={kind!r} device_id={device_id!r}",
        )
    lo, hi = now_ms - limits.max_past_ms, now_ms + limits.max_future_ms
    ts = list(map(_T, msg.readings))
    if min(ts) < lo or max(ts) > hi:
        i = next(i for i, t in enumerate(ts) if not lo <= t <= hi)
        raise Rejected(
            Reason.TIME_RANGE,
            f"readings[{i}].t={ts[i]} is outside [{lo}, {hi}] (now-{limits.max_past_ms} ms, "
            f"now+{limits.max_future_ms} ms); check the device clock",
        )
    # The usual energy message (power_w everywhere, no fixed-time reading) is recognized
    # in C; only others are checked reading by reading, for the first bad one.
    if kind == "energy_meter" and (
        None in map(_POWER, msg.readings) or set(map(_FIXED, msg.readings)) != {(None, None)}
    ):
        for i, er in enumerate(msg.readings):
            assert isinstance(er, EnergyReading)
            _check_energy(i, er)
    if kind == "wearable":
        for i, r in enumerate(msg.readings):
            if all(getattr(r, f) is None for f in _WEARABLE_MEASURES):
                raise Rejected(
                    Reason.SCHEMA,
                    f"readings[{i}] has no measurement; give at least one of "
                    + ", ".join(_WEARABLE_MEASURES),
                )
    return msg


def encode_message(msg: Message) -> bytes:
    """Serialize a message to its JSON payload (omitting absent optional fields)."""
    return _ENCODER.encode(msg)


def make_message(kind: str, device_id: str, site: str, seq: int, readings: list[dict]) -> Message:
    """Build a validated message from plain dicts (used by agents and simulators)."""
    raw = {"device_id": device_id, "kind": kind, "site": site, "seq": seq, "readings": readings}
    try:
        return msgspec.convert(raw, MESSAGE_TYPES[kind])
    except msgspec.ValidationError as exc:
        raise ValueError(f"reading does not fit contract v1: {exc}") from None
