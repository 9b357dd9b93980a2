"""BleMqttSource against the REAL local mosquitto (conftest fixtures)."""

from __future__ import annotations

import time
import uuid

import pytest

from contract.settings import ConfigError, Settings
from firmware_bridge.base import DeviceError
from firmware_bridge.ble_gateway.mqtt_source import BleMqttSource, decode_gateway_json
from firmware_bridge.ble_gateway.simulator import GatewayPublisher
from firmware_bridge.registry import make_source
from firmware_bridge.testing import read_n
from machi.servers import Mosquitto

pytestmark = pytest.mark.integration


def _source(url: str, base: str) -> BleMqttSource:
    src = make_source(
        {
            "type": "ble_gateway_mqtt",
            "device_id": f"gw-{uuid.uuid4().hex[:6]}",
            "mqtt_url": url,
            "topic": base,
            "interval_s": 0.5,
            "devices": {"C0FFEE000001": "care-0001"},
        }
    )
    assert isinstance(src, BleMqttSource)
    return src


def test_gateway_json_to_readings(mosquitto: Mosquitto) -> None:
    base = f"home{uuid.uuid4().hex[:6]}"
    src = _source(mosquitto.url, base)
    src.open()
    pub = GatewayPublisher(Settings(mqtt_url=mosquitto.url), base)
    try:
        # A Theengs-decoded Mi Band message (brand/model/rssi are ignored).
        pub.publish(
            "C0FFEE000001",
            {
                "id": "C0:FF:EE:00:00:01",
                "brand": "Xiaomi",
                "model": "Mi Band",
                "rssi": -71,
                "steps": 4321,
                "act_bpm": 88,
            },
            {"steps": 4321, "heart_rate_bpm": 88},
        )
        pub.publish(
            "C0FFEE000001",
            {"hr": 61, "spo2": 96.5, "tempc": 35.9, "batt": 77, "fall": True},
            {
                "heart_rate_bpm": 61,
                "spo2_pct": 96.5,
                "skin_temp_c": 35.9,
                "battery_pct": 77,
                "fall": True,
            },
        )
        pub.publish("DEADBEEF0001", {"hr": 70})  # not in the devices table
        pub.publish("C0FFEE000001", b"{not json")
        pub.publish("C0FFEE000001", {"hr": 900})
        pub.publish("C0FFEE000001", {"rssi": -60})
        got = read_n(src, 2)
        time.sleep(0.3)
        got += src.read()
    finally:
        pub.close()
        src.close()
    assert got == [
        {"device_id": "care-0001", **{k: v for k, v in t.items() if k != "mac"}} for t in pub.sent
    ]
    reasons = sorted(r for r, _ in src.take_rejects())
    assert reasons == ["invalid_json", "no_measurement", "out_of_range", "unknown_device"]


def test_broker_gone_raises_device_error_then_recovers(own_mosquitto: Mosquitto) -> None:
    base = "gw"
    src = _source(own_mosquitto.url, base)
    src.open()
    own_mosquitto.kill()
    with pytest.raises(DeviceError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            src.read()
    src.close()
    with pytest.raises(DeviceError):
        src.open()
    own_mosquitto.start()
    src.open()
    pub = GatewayPublisher(Settings(mqtt_url=own_mosquitto.url), base)
    try:
        pub.publish("C0FFEE000001", {"hr": 64}, {"heart_rate_bpm": 64})
        assert read_n(src, 1) == [{"device_id": "care-0001", "heart_rate_bpm": 64}]
    finally:
        pub.close()
        src.close()


def test_json_decoder_rejects_non_finite_and_bools() -> None:
    for bad in (
        b'{"hr": NaN}',
        b'{"hr": Infinity}',
        b'{"hr": true}',
        b'{"steps": 1.5}',
        b"[1]",
        b'{"fall": 1}',
    ):
        with pytest.raises(Exception) as err:
            decode_gateway_json(bad)
        assert type(err.value).__name__ == "DecodeError", bad


def test_config_rejects_wildcards_and_bad_url() -> None:
    cfg = {
        "type": "ble_gateway_mqtt",
        "device_id": "gw-1",
        "mqtt_url": "mqtt://127.0.0.1:1",
        "topic": "home/#",
        "devices": {"C0FFEE000001": "care-1"},
    }
    with pytest.raises(ConfigError, match="wildcards"):
        make_source(cfg)
    with pytest.raises(ConfigError, match="mqtt://"):
        make_source({**cfg, "topic": "home", "mqtt_url": "http://x"})
