"""Measurements other than raw telemetry that machi writes to InfluxDB.

These are part of the InfluxDB schema the KPI API and the dashboards query.

``care_alert`` (derived by the events worker)
    tags: ``device_id``, ``site``, ``type`` (hr_high | hr_low | spo2_low | fall)
    fields: ``state`` (string "open" | "closed"), ``value`` (float, the triggering
    measurement; 1.0 for a fall), ``episode_ms`` (int, the epoch ms the episode opened)
    time: when the state changed. One episode = one "open" point (+ one "closed").

``device_alert`` (derived by the events worker: wearables that are silent or unwell)
    tags: ``device_id``, ``site``, ``type`` (silent | battery_low | off_body)
    fields: as ``care_alert``. ``value`` is the battery percentage for ``battery_low``,
    the silence in seconds for ``silent`` and 1.0 for ``off_body``; ``episode_ms`` of a
    silent episode is the last reading's time + the silence threshold, so two events
    workers derive the same episode. Kept apart from ``care_alert`` so care KPIs count
    care episodes only.

``alert_state`` (written by the leader of ``machi alerts run``, one point per alert)
    tags: ``device_id``, ``site``, ``type`` (care and device alert types), ``priority``
    (high | medium | low)
    fields: ``alert_id`` (string), ``state`` (string "open" | "acked" | "resolved"),
    ``tier`` (int, the tier notified last: 1 = the first, 0 = no route), ``escalated``
    (bool, tier > 1), ``ack_s`` (float, seconds from opening to acknowledgement; absent until acked)
    time: the episode's ``episode_ms``. The point is rewritten in place at each change
    (same series and time), so the newest field values are the alert's current state.

``alerts_stats`` (each ``machi alerts run`` instance, every 10 s once it has sent)
    tags: ``instance``, ``scheme`` (channel URL scheme: mailto, json, hmac+https, ...)
    fields: ``sent`` / ``failures`` (int, cumulative since the instance started)

``bus_arrival`` (derived by the events worker from GTFS static + bus fixes)
    tags: ``device_id``, ``route_id``, ``site``, ``stop_id``
    fields: ``delay_s`` (float, + = late), ``trip_id`` (string), ``scheduled_ms`` (int),
    ``headway_s`` (float, optional: seconds since the previous arrival of any bus of the
    same route at the same stop; absent for the first one known; rewritten in place when
    a late arrival lands in between)
    time: the observed arrival.

``ingest_stats`` (written by each ingest worker every ``stats_interval`` seconds)
    tags: ``worker``
    fields: ``messages`` / ``readings`` / ``rejected`` (int, cumulative since start),
    ``lag_s`` (float, now minus the newest stored reading's t), ``pending`` (int)

``ingest_rejects`` (same cadence) tags: ``worker``, ``reason``; fields: ``count`` (int, cumulative)

``agent_status`` (ingest stores each status message it receives)
    tags: ``agent_id``
    fields: ``online`` (bool), ``outbox_depth``, ``outbox_bytes``, ``dropped``,
    ``published`` (int), ``sources_unhealthy`` (int), ``unconfirmed`` (int, messages
    published but not yet confirmed stored; 0 for agents that do not report it)
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contract.schema import EpochMs, Id

CARE_ALERT = "care_alert"
DEVICE_ALERT = "device_alert"
ALERT_STATE = "alert_state"
ALERTS_STATS = "alerts_stats"
BUS_ARRIVAL = "bus_arrival"
INGEST_STATS = "ingest_stats"
INGEST_REJECTS = "ingest_rejects"
AGENT_STATUS = "agent_status"

ALERT_TYPES = ("hr_high", "hr_low", "spo2_low", "fall")
#: Device problems (``device_alert`` ``type`` tag), published on the same alert stream.
DEVICE_ALERT_TYPES = ("silent", "battery_low", "off_body")

ALL_ALERT_TYPES = (*ALERT_TYPES, *DEVICE_ALERT_TYPES)
AlertTypeName = Literal[
    "hr_high", "hr_low", "spo2_low", "fall", "silent", "battery_low", "off_body"
]
if AlertTypeName.__args__ != ALL_ALERT_TYPES:  # type: ignore[attr-defined]
    raise ImportError("contract.events: AlertTypeName disagrees with the alert type tuples")


class AlertPayload(msgspec.Struct, frozen=True):
    """A message on ``{prefix}/v1/alerts/{theme}/{device_id}`` (open or closed episode)."""

    device_id: Id
    site: Id
    type: AlertTypeName
    state: Literal["open", "closed"]
    episode_ms: EpochMs
    t: EpochMs
    value: Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)] | None = None


_ALERT_DECODER = msgspec.json.Decoder(AlertPayload)


def decode_alert(payload: bytes) -> AlertPayload:
    """Decode an alert message; msgspec.ValidationError / DecodeError say what is wrong."""
    return _ALERT_DECODER.decode(payload)
