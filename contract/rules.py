"""Shared rules: one definition each, used by every component.

Kinds, themes and alert types; the care privacy threshold k; the on-time window; the
source types an edge agent can run. A component that needs one of these imports it
from here, so that the API, the dashboards, the edge agent and the drivers cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from contract.events import ALERT_TYPES as CARE_ALERT_TYPES
from contract.events import DEVICE_ALERT_TYPES as _DEVICE_ALERT_TYPES
from contract.schema import KINDS

__all__ = [
    "ALERT_PRIORITIES",
    "ALERT_TYPES",
    "ALL_ALERT_TYPES",
    "DEVICE_ALERT_TYPES",
    "PRIORITIES",
    "CARE_DP",
    "DEMAND_SLOT_MS",
    "CARE_K_DEFAULT",
    "CARE_PUBLISHED",
    "CARE_PUBLISHED_MEANS",
    "CARE_K_MIN",
    "KINDS",
    "ON_TIME_EARLY_S",
    "ON_TIME_LATE_S",
    "SOURCE_TYPES",
    "THEMES",
    "SourceType",
    "check_care_k",
]

#: The KPI themes, in the order the API and the boards show them.
THEMES: Final = ("green", "care", "transit", "platform")

#: Care alert types the events worker derives (``care_alert`` ``type`` tag).
ALERT_TYPES: Final = CARE_ALERT_TYPES

#: Device alert types (silent wearable, low battery, off the body): ``device_alert``.
DEVICE_ALERT_TYPES: Final = _DEVICE_ALERT_TYPES

#: Every type the alert stream carries; ``machi alerts run`` routes all of them.
ALL_ALERT_TYPES: Final = (*CARE_ALERT_TYPES, *_DEVICE_ALERT_TYPES)

#: Alarm priorities, most urgent first (after IEC 60601-1-8's high / medium / low).
PRIORITIES: Final = ("high", "medium", "low")

#: Default priority per alert type; a rules file's ``[priorities]`` table overrides it.
ALERT_PRIORITIES: Final[dict[str, str]] = {
    "fall": "high",
    "spo2_low": "high",
    "hr_high": "medium",
    "hr_low": "medium",
    "silent": "low",
    "battery_low": "low",
    "off_body": "low",
}

#: k-anonymity threshold of care figures: a value over fewer than k residents is
#: suppressed. CARE_K_DEFAULT is the public scope's k; the care scope may be given a
#: lower one, never below CARE_K_MIN (a figure over fewer residents can single out one
#: household). The residents' page and its open data never go below CARE_K_DEFAULT,
#: whatever the API's own public k. The other disclosure rules are in contract.disclosure.
CARE_K_DEFAULT: Final = 10
CARE_K_MIN: Final = 5


#: A stop arrival is on time from ON_TIME_EARLY_S early to ON_TIME_LATE_S late (seconds).
ON_TIME_EARLY_S: Final = 60
ON_TIME_LATE_S: Final = 300


def check_care_k(k: int, name: str = "MACHI_CARE_K") -> int:
    """``k`` if it protects residents, else ValueError naming the setting and the floor."""
    if k < CARE_K_MIN:
        raise ValueError(
            f"{name}={k} is below the minimum k of {CARE_K_MIN}: a care figure over fewer "
            "residents can single one out"
        )
    return k


@dataclass(frozen=True)
class SourceType:
    """An edge source type: the reading kind it produces, and whether one source carries
    many devices (each reading then names its own ``device_id``; the source's own
    ``device_id`` is optional)."""

    kind: str
    multi_device: bool = False


#: Every ``[[sources]]`` type an edge agent can run (drivers live in firmware_bridge/).
SOURCE_TYPES: Final[dict[str, SourceType]] = {
    "echonet_broute": SourceType("energy_meter"),
    "modbus_sdm": SourceType("energy_meter"),
    "nmea_gps": SourceType("bus"),
    "ble_gateway_serial": SourceType("wearable", multi_device=True),
    "ble_gateway_mqtt": SourceType("wearable", multi_device=True),
}

#: Care figures after disclosure control (``contract.disclosure``, the public policy), one
#: point per public grid tile and row, stamped at the tile's start: written by the API's
#: care publisher, read by the Grafana care boards, so that no board reads raw care data.
#: Tag ``site`` (the city row: ``contract.disclosure.CITY``); per care-table column an
#: integer field when published as a number and a text field ``<column>_shown`` ("12",
#: "0-9" for a range, "-" withheld); the per-resident means below where the row's residents
#: are published; ``k`` and ``grid_h``, the policy applied.
CARE_PUBLISHED: Final = "care_published"
CARE_PUBLISHED_MEANS: Final = ("heart_rate_bpm", "spo2_pct", "skin_temp_c", "battery_pct")

#: Differentially private public care counts (optional, ``MACHI_CARE_DP_EPSILON``): one
#: release per public tile, written once by the API (``api/dp.py``) and read back by every
#: later answer. Tag ``site`` (the city: ``*``); an integer per care-table column;
#: ``epsilon`` and ``max_alerts``, the parameters of the release.
CARE_DP: Final = "care_dp"

#: Japan's demand period (デマンド時限): 30-minute slots on the epoch grid (so :00 and
#: :30 in JST too), the unit of peak demand, of fixed-time meter readings and of the
#: stored slot-boundary corrections.
DEMAND_SLOT_MS: Final = 30 * 60 * 1000

#: The green rollups (written by the API's continuous queries, read by the API and by
#: Grafana, so both count energy by one rule): retention policy, the per-site measurement
#: and, per counter field, the rollup field holding each 5-minute interval's energy.
ROLLUP_RP: Final = "machi_rollup"
ROLLUP_SITE: Final = "energy_site"
ROLLUP_FIELDS: Final[dict[str, str]] = {
    "energy_import_kwh": "imp_kwh",
    "energy_export_kwh": "exp_kwh",
}
