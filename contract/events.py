"""Measurements other than raw telemetry that machi writes to InfluxDB.

These are part of the InfluxDB schema the KPI API and the dashboards query.

``care_alert`` (derived by the events worker)
    tags: ``device_id``, ``site``, ``type`` (hr_high | hr_low | spo2_low | fall)
    fields: ``state`` (string "open" | "closed"), ``value`` (float, the triggering
    measurement; 1.0 for a fall), ``episode_ms`` (int, the epoch ms the episode opened)
    time: when the state changed. One episode = one "open" point (+ one "closed").

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

CARE_ALERT = "care_alert"
BUS_ARRIVAL = "bus_arrival"
INGEST_STATS = "ingest_stats"
INGEST_REJECTS = "ingest_rejects"
AGENT_STATUS = "agent_status"

ALERT_TYPES = ("hr_high", "hr_low", "spo2_low", "fall")
