"""Expand Grafana's InfluxQL macros and template variables the way Grafana does.

Used by ``machi dashboards verify`` (runs every panel query against a live InfluxDB) and
by the tests. What Grafana's InfluxDB datasource does, and this module mirrors:

* ``$timeFilter`` -> ``time >= <from>ms and time <= <to>ms`` (absolute epoch ms);
* ``$__interval`` -> range / max data points, rounded up to a "nice" interval
  (``1m``); ``$__interval_ms`` -> the same in milliseconds;
* a multi-value or "All" variable -> each value regex-escaped, joined as ``(a|b)``;
  "All" without a custom all-value means every value the variable's query returned.

Limitation: Grafana's exact interval rounding table has more steps; any step here is a
valid InfluxQL duration, so a query that runs here runs with Grafana's value too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_NICE_MS = [
    (1_000, "1s"),
    (5_000, "5s"),
    (10_000, "10s"),
    (15_000, "15s"),
    (30_000, "30s"),
    (60_000, "1m"),
    (300_000, "5m"),
    (600_000, "10m"),
    (900_000, "15m"),
    (1_800_000, "30m"),
    (3_600_000, "1h"),
    (10_800_000, "3h"),
    (21_600_000, "6h"),
    (43_200_000, "12h"),
    (86_400_000, "1d"),
    (604_800_000, "7d"),
]

# Grafana's regexEscape: every regex metacharacter and the '/' that ends an InfluxQL regex.
_REGEX_META = re.compile(r"([\\^$*+?.()|\[\]{}/])")


def regex_escape(value: str) -> str:
    return _REGEX_META.sub(r"\\\1", value)


def interval(from_ms: int, to_ms: int, max_data_points: int = 1000) -> tuple[str, int]:
    """Grafana's ``$__interval`` for a range: (``"1m"``, 60000)."""
    raw = max(1, (to_ms - from_ms) // max(1, max_data_points))
    for ms, text in _NICE_MS:
        if ms >= raw:
            return text, ms
    return _NICE_MS[-1][1], _NICE_MS[-1][0]


def format_multi(values: Sequence[str]) -> str:
    """A multi-value / All selection as Grafana puts it into an InfluxQL regex."""
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


@dataclass(frozen=True)
class Context:
    """What Grafana knows when it sends a panel's query."""

    from_ms: int
    to_ms: int
    #: variable name -> the selected values (already resolved from "All").
    variables: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_data_points: int = 1000


def expand(query: str, ctx: Context) -> str:
    """The InfluxQL Grafana would send for ``query`` in ``ctx``."""
    iv_text, iv_ms = interval(ctx.from_ms, ctx.to_ms, ctx.max_data_points)
    builtins = {
        "timeFilter": f"time >= {ctx.from_ms}ms and time <= {ctx.to_ms}ms",
        "__interval_ms": str(iv_ms),
        "__interval": iv_text,
        "__from": str(ctx.from_ms),
        "__to": str(ctx.to_ms),
    }
    values = {**{k: format_multi(v) for k, v in ctx.variables.items()}, **builtins}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            # Grafana leaves unknown variables in place; InfluxDB would then fail with a
            # parse error far from the cause, so say which variable is missing here.
            raise KeyError(f"query uses ${name}, which is neither a macro nor a known variable")
        return values[name]

    # ${name} or $name (longest identifier wins, so $__interval_ms is not $__interval + _ms)
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, query)
