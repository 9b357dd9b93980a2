"""The one InfluxDB line-protocol serializer (contract v1 InfluxDB schema).

Measurement = kind; tags = device_id, site (+ route_id for bus), sorted by key;
fields = the reading's fields + ``seq``; timestamp in milliseconds. Because a point's
identity is (measurement, tag set, timestamp), writing the same reading again
overwrites it: redeliveries never count twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import msgspec

from contract.schema import READING_TAGS, BusReading, Message, Reading

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


def _value_expr(t: object, var: str) -> str:
    """Python source formatting ``var`` as a line-protocol value of msgspec type ``t``."""
    import msgspec.inspect as mi

    if isinstance(t, mi.BoolType):
        return f'("true" if {var} else "false")'
    if isinstance(t, mi.IntType):
        return f'f"{{{var}}}i"'
    if isinstance(t, mi.FloatType):
        # Float fields are always floats after msgspec decoding (ints are converted),
        # and their range bounds exclude NaN/inf; _finite guards hand-built structs.
        return f"(repr({var}) if {var} - {var} == 0.0 else _finite({var}))"
    if isinstance(t, mi.StrType):
        return f"_string({var})"
    raise TypeError(f"no line-protocol mapping for {t!r}")


def _finite(v: float) -> str:
    if v - v != 0.0:  # NaN or +-inf
        raise SerializeError(f"field value {v!r} is not finite")
    return repr(float(v))


def _string(v: str) -> str:
    return format_value(v)


def _compile_fields(kind: str, cls: type) -> Callable[[Any], str]:
    """Generate ``fields(reading) -> "a=1.0,b=2i,"`` for one reading type.

    This is ingest's hot path: a generated function with direct attribute access is
    several times faster than looping over the fields with getattr.
    """
    import msgspec.inspect as mi

    skip = {"t", *READING_TAGS[kind]}
    parts: list[str] = []
    body: list[str] = []
    for i, f in enumerate(mi.type_info(cls).fields):  # type: ignore[attr-defined]
        if f.name in skip:
            continue
        t = f.type
        if isinstance(t, mi.UnionType):
            t = next(x for x in t.types if not isinstance(x, mi.NoneType))
        var = f"v{i}"
        body.append(f"    {var} = r.{f.name}")
        expr = _value_expr(t, var)
        parts.append(f'(("{f.name}=" + {expr} + ",") if {var} is not None else "")')
    src = "def fields(r):\n" + "\n".join(body) + "\n    return " + " + ".join(parts) + "\n"
    scope: dict[str, Any] = {"_finite": _finite, "_string": _string}
    exec(compile(src, f"<line-protocol fields of {cls.__name__}>", "exec"), scope)  # noqa: S102
    return cast(Callable[[Any], str], scope["fields"])


_FIELDS_CACHE: dict[type, Callable[[Any], str]] = {}

# -- the fast path for readings whose fields are all floats (energy meters) -------------
#
# CPython's repr(float) (David Gay's dtoa) was 40 % of ingest's CPU. msgspec's JSON
# encoder writes the same shortest round-trip digits several times faster, so a message
# of such readings is encoded to JSON in one call and rewritten into lines. Its text
# differs from repr() only in notation: exponents (1e16 vs 1e+16, 1.5e-7 vs 1.5e-07),
# 1e-5 <= |v| < 1e-4 (0.00001 vs 1e-05) and NaN/inf (null); a value that is not a
# number at all would not start with a digit or "-". Any of those sends the whole
# message to the reference formatting instead (tests/contract/test_lineprotocol.py
# checks both paths agree).
_JSON = msgspec.json.Encoder()
# Two searches: each has a literal prefix, which re scans for quickly; one alternation
# of both costs 3x more.
_NOT_NUMBER = re.compile(rb'":(?:[^-0-9]|-?0\.0000)')
_EXPONENT = re.compile(rb"e[-0-9]")
_COLON_TO_EQUALS = bytes.maketrans(b":", b"=")
_FLOAT_ONLY: dict[type, bool] = {}


def _float_only(kind: str, cls: type) -> bool:
    """Whether every field of ``cls`` but ``t`` is an optional float with a plain name."""
    import msgspec.inspect as mi

    if READING_TAGS[kind]:
        return False
    info = mi.type_info(cls)
    for f in info.fields:  # type: ignore[attr-defined]
        if f.name == "t":
            continue
        t = f.type
        types = t.types if isinstance(t, mi.UnionType) else (t,)
        if not all(isinstance(x, mi.FloatType | mi.NoneType) for x in types):
            return False
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", f.name) or re.search(r"e[-0-9]", f.name):
            return False
    first = info.fields[0]  # type: ignore[attr-defined]
    # Absent fields must be left out of the JSON, and "t" must come first in it.
    omits = cls.__struct_config__.omit_defaults  # type: ignore[attr-defined]
    return bool(first.name == "t" and first.required and omits)


def _json_lines(readings: list[Reading], head: str, tail: str) -> list[str] | None:
    """Lines for float-only readings via msgspec's JSON, or None if the text is not
    exactly what repr() writes (see above)."""
    js = _JSON.encode(readings)
    if _NOT_NUMBER.search(js) or _EXPONENT.search(js):
        return None
    # [{"t":1,"a":1.5},{"t":2,"a":2.5}] -> ["1,a=1.5", "2,a=2.5"]; one pass maps ":" to
    # "=" and drops the quotes.
    parts = js.translate(_COLON_TO_EQUALS, b'"').decode()[4:-2].split("},{t=")
    sep_tail = "," + tail
    out = []
    for p in parts:
        t, _, f = p.partition(",")
        # A hand-built reading may have no field at all: then only seq follows the tags.
        out.append(f"{head}{f}{sep_tail}{t}" if f else f"{head}{tail}{t}")
    return out


def message_lines(msg: Message) -> list[str]:
    """Lines for every reading of a validated message, in order.

    The tag prefix is built once per message; field formatting is a generated function
    per reading type (see :func:`_compile_fields`), or msgspec's JSON encoder for
    float-only readings (see :func:`_json_lines`).
    """
    kind = msg.kind
    readings = msg.readings
    cls = type(readings[0])
    tail = f"seq={msg.seq}i "
    device, site_tag = escape_key(msg.device_id), escape_key(msg.site)
    float_only = _FLOAT_ONLY.get(cls)
    if float_only is None:
        float_only = _FLOAT_ONLY[cls] = _float_only(kind, cls)
    head = f"{escape_measurement(kind)},device_id={device},site={site_tag} "
    if float_only and all(type(r) is cls for r in readings):
        out = _json_lines(cast(list[Reading], readings), head, tail)
        if out is not None:
            return out
    return reference_lines(msg)


def reference_lines(msg: Message) -> list[str]:
    """:func:`message_lines` without the JSON fast path: one formatter per field."""
    kind = msg.kind
    readings = msg.readings
    cls = type(readings[0])
    fields = _FIELDS_CACHE.get(cls)
    if fields is None:
        fields = _FIELDS_CACHE[cls] = _compile_fields(kind, cls)
    tail = f"seq={msg.seq}i "
    device, site_tag = escape_key(msg.device_id), escape_key(msg.site)
    if kind == "bus":
        base = f"bus,device_id={device},route_id="
        site = f",site={site_tag} "
        return [
            f"{base}{escape_key(r.route_id)}{site}{fields(r)}{tail}{r.t}"
            for r in cast(list[BusReading], readings)
        ]
    head = f"{escape_measurement(kind)},device_id={device},site={site_tag} "
    return [f"{head}{fields(r)}{tail}{r.t}" for r in readings]
