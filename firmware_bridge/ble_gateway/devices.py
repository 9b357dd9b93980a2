"""The MAC -> device_id table: raw MAC addresses never leave the edge (privacy)."""

from __future__ import annotations

from contract.ids import check_id
from firmware_bridge.ble_gateway.framing import normalize_mac
from firmware_bridge.config import SourceConfig


def device_table(cfg: SourceConfig) -> dict[str, str]:
    """``devices = {"AABBCCDDEEFF" = "care-0001"}`` checked and normalised."""
    table = cfg.table("devices")
    out: dict[str, str] = {}
    for mac, device_id in table.items():
        try:
            key = normalize_mac(mac)
            out[key] = check_id(device_id, f"devices[{mac!r}]")
        except (ValueError, TypeError) as exc:
            raise cfg.error(f"devices table: {exc}") from None
    if not out:
        raise cfg.error(
            'devices is empty; map each wearable: devices = {"AABBCCDDEEFF" = "care-0001"}'
        )
    return out
