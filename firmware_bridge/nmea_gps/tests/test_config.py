"""Registry and config errors name the source and the key."""

from __future__ import annotations

import pytest

from contract.settings import ConfigError
from firmware_bridge.registry import make_source

BASE = {"type": "nmea_gps", "device_id": "bus-1", "port": "/dev/null", "route_id": "R1"}


@pytest.mark.parametrize(
    "change,match",
    [
        ({"type": "nope"}, "unknown source type 'nope'"),
        ({"device_id": "bad id"}, "device_id 'bad id' is invalid"),
        ({"route_id": None}, "key 'route_id' is missing"),
        ({"port": 5}, "port must be a non-empty string"),
        ({"baudrate": "fast"}, "baudrate must be a whole number"),
        ({"interval_s": -1}, "interval_s must be a number"),
        ({"site": "a/b"}, "site 'a/b' is invalid"),
    ],
)
def test_bad_config_is_a_clear_error(change: dict, match: str) -> None:
    cfg = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=match):
        make_source(cfg)


def test_not_a_table() -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        make_source(["x"])  # type: ignore[arg-type]
