"""What reached InfluxDB: counts of contract points."""

from __future__ import annotations

from contract.influx import InfluxV1, quote_ident


def stored(influx: InfluxV1, measurement: str) -> int:
    """Points stored in ``measurement`` (every contract point has the ``seq`` field)."""
    rows = influx.rows(f"SELECT count(seq) FROM {quote_ident(measurement)}")  # noqa: S608 (quoted)
    return int(rows[0]["count"]) if rows else 0


def stored_total(influx: InfluxV1) -> int:
    return sum(stored(influx, m) for m in ("energy_meter", "wearable", "bus"))
