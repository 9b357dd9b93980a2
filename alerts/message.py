"""What a notification says: ids, type, priority, site, time and a link to the care API.

No names (machi has none) and, unless ``include_values`` is set, no health values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerts.channels import Notification

__all__ = ["build"]

_TITLES = {
    "fall": "Fall detected",
    "spo2_low": "Low blood oxygen",
    "hr_high": "High heart rate",
    "hr_low": "Low heart rate",
    "silent": "Wearable silent",
    "battery_low": "Wearable battery low",
    "off_body": "Wearable not worn",
}


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def build(
    alert: dict[str, Any],
    tier: int,
    attempt_kind: str,
    recipient: str,
    api_base_url: str,
    include_values: bool,
) -> Notification:
    """The notification of one alert for one recipient at one tier."""
    aid = alert["alert_id"]
    link = f"{api_base_url.rstrip('/')}/v1/alerts/{aid}"
    reminder = attempt_kind.startswith("remind")
    payload: dict[str, Any] = {
        "alert_id": aid,
        "type": alert["type"],
        "priority": alert["priority"],
        "device_id": alert["device_id"],
        "site": alert["site"],
        "time": _iso(int(alert["episode_ms"])),
        "tier": tier,
        "reminder": reminder,
        "link": link,
        "ack": f"{link}/ack",
    }
    if include_values and alert.get("value") is not None:
        payload["value"] = alert["value"]
    what = _TITLES.get(alert["type"], alert["type"])
    title = f"[{alert['priority'].upper()}] {what} at {alert['site']}" + (
        " (reminder)" if reminder else ""
    )
    lines = [f"{k}: {v}" for k, v in payload.items() if k not in ("reminder",)]
    body = "\n".join([f"{what}: acknowledge it through the care API.", "", *lines])
    return Notification(
        delivery_id=f"{aid}-{tier}-{attempt_kind}-{recipient[:8]}",
        priority=alert["priority"],
        title=title,
        body=body,
        payload=payload,
    )
