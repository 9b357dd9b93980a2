"""Build a :class:`~firmware_bridge.base.Source` from one ``[[sources]]`` config table."""

from __future__ import annotations

import importlib
from typing import Any

from contract.rules import SOURCE_TYPES
from contract.settings import ConfigError
from firmware_bridge.base import Source
from firmware_bridge.config import SourceConfig

# type -> "module:Class"; imported lazily so a site without, say, Modbus meters never
# imports pymodbus. The types themselves are contract.rules.SOURCE_TYPES.
DRIVERS: dict[str, str] = {
    "nmea_gps": "firmware_bridge.nmea_gps.source:NmeaSource",
    "ble_gateway_serial": "firmware_bridge.ble_gateway.serial_source:BleSerialSource",
    "ble_gateway_mqtt": "firmware_bridge.ble_gateway.mqtt_source:BleMqttSource",
    "modbus_sdm": "firmware_bridge.modbus_sdm.source:SdmSource",
    "echonet_broute": "firmware_bridge.echonet_broute.source:BrouteSource",
}


def make_source(cfg: dict[str, Any]) -> Source:
    """The source for ``cfg`` (not opened yet). Raises ConfigError on bad config."""
    sc = SourceConfig(cfg)
    kind = cfg.get("type")
    if kind not in SOURCE_TYPES:
        raise ConfigError(
            f"{sc.where}: unknown source type {kind!r}; use one of {', '.join(SOURCE_TYPES)}"
        )
    if not SOURCE_TYPES[kind].multi_device or "device_id" in cfg:
        sc.id_("device_id")
    if "site" in cfg:
        sc.id_("site")
    module_name, _, cls_name = DRIVERS[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    source: Source = cls.from_config(sc)
    return source


if set(DRIVERS) != set(SOURCE_TYPES):  # pragma: no cover - caught by the import in tests
    raise ImportError("firmware_bridge DRIVERS and contract.rules.SOURCE_TYPES disagree")
