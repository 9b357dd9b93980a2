"""Helpers for tests and benchmarks that check what reached InfluxDB."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from contract.influx import InfluxV1, quote_ident

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0, every: float = 0.2
) -> T:
    """Poll ``probe`` until ``done(value)`` or the timeout; return the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(every)
        value = probe()
    return value


def stored(influx: InfluxV1, measurement: str) -> int:
    """Points stored in ``measurement`` (every contract point has the ``seq`` field)."""
    rows = influx.rows(f"SELECT count(seq) FROM {quote_ident(measurement)}")  # noqa: S608 (quoted)
    return int(rows[0]["count"]) if rows else 0


def stored_total(influx: InfluxV1) -> int:
    return sum(stored(influx, m) for m in ("energy_meter", "wearable", "bus"))
