"""The one InfluxDB line-protocol serializer (contract v1 InfluxDB schema).

Measurement = kind; tags = device_id, site (+ route_id for bus), sorted by key;
fields = the reading's fields + ``seq``; timestamp in milliseconds. Because a point's
identity is (measurement, tag set, timestamp), writing the same reading again
overwrites it: redeliveries never count twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from contract.schema import READING_TAGS, Message

_MEASUREMENT_ESC = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESC = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_STR_ESC = str.maketrans({'"': r"\"", "\\": "\\\\"})

FieldValue = float | int | bool | str


class SerializeError(ValueError):
    """A value that line protocol cannot carry faithfully."""


def _no_newlines(s: str, what: str) -> str:
    # Line protocol has no escape for line breaks in names and tags, and InfluxDB 1.x keeps
    # a backslash there literally -- so a trailing one would escape the separator after
    # it. Neither can be written faithfully: refuse them instead of guessing.
    if "\n" in s or "\r" in s or "\\" in s:
        raise SerializeError(f"{what} {s!r} contains a line break or a backslash")
    if not s:
        raise SerializeError(f"{what} is empty")
    return s


def escape_measurement(name: str) -> str:
    return _no_newlines(name, "measurement").translate(_MEASUREMENT_ESC)


def escape_key(key: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _no_newlines(key, "key").translate(_TAG_ESC)


def format_value(value: FieldValue) -> str:
    """Format one field value with an explicit type so a field never changes type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializeError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise SerializeError(f"string field {value!r} contains a line break")
        return '"' + value.translate(_STR_ESC) + '"'
    raise SerializeError(f"unsupported field type {type(value).__name__}")


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    ts_ms: int,
) -> str:
    """One point. ``None`` fields are skipped; at least one field must remain."""
    parts = [escape_measurement(measurement)]
    for k in sorted(tags):
        v = tags[k]
        if v is None or v == "":
            continue
        parts.append(f"{escape_key(k)}={escape_key(v)}")
    head = ",".join(parts)
    body = ",".join(
        f"{escape_key(k)}={format_value(v)}" for k, v in fields.items() if v is not None
    )
    if not body:
        raise SerializeError(f"point {head} has no fields")
    return f"{head} {body} {int(ts_ms)}"


# Per-kind field names in declaration order, without ``t`` and the tag fields.
def _field_names(kind: str, cls: type) -> tuple[str, ...]:
    skip = {"t", *READING_TAGS[kind]}
    return tuple(f for f in cls.__struct_fields__ if f not in skip)


_FIELDS_CACHE: dict[type, tuple[str, ...]] = {}


def message_lines(msg: Message) -> list[str]:
    """Lines for every reading of a validated message, in order.

    This is the hot path of ingest, so the tag prefix is built once per message and
    each reading's fields are formatted inline.
    """
    kind = msg.kind
    readings = msg.readings
    cls = type(readings[0])
    names = _FIELDS_CACHE.get(cls)
    if names is None:
        names = _FIELDS_CACHE[cls] = _field_names(kind, cls)
    seq_field = f"seq={msg.seq}i"
    if kind == "bus":
        base = f"bus,device_id={escape_key(msg.device_id)},route_id="
        site = f",site={escape_key(msg.site)} "
        return [
            f"{base}{escape_key(r.route_id)}{site}{_fields(r, names)}{seq_field} {r.t}"
            for r in readings
        ]
    device, site_tag = escape_key(msg.device_id), escape_key(msg.site)
    head = f"{escape_measurement(kind)},device_id={device},site={site_tag} "
    return [f"{head}{_fields(r, names)}{seq_field} {r.t}" for r in readings]


def _fields(r: object, names: Iterable[str]) -> str:
    out = []
    for name in names:
        v = getattr(r, name)
        if v is not None:
            out.append(f"{name}={format_value(v)},")
    return "".join(out)
