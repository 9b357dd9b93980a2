"""Demo helpers: write the GTFS feed, backfill history through MQTT, print the KPIs."""

from __future__ import annotations

import time
from typing import Any

import httpx

from contract.settings import Settings
from machi.simulate import Fleet, Publisher


def backfill(
    settings: Settings,
    fleet: Fleet,
    hours: float = 2.0,
    interval_s: float = 10.0,
    per_message: int = 30,
    end_ms: int | None = None,
    client_id: str = "machi-democity-backfill",
) -> int:
    """Publish ``hours`` of past telemetry, oldest first, ending at ``end_ms`` (now).

    It goes through the broker like live data, so ingest stores it and the events
    worker derives alerts and arrivals from it. Returns the number of readings sent.
    """
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    chunk_ms = int(interval_s * per_message * 1000)
    t = end - int(hours * 3_600_000) + chunk_ms
    pub = Publisher(settings, client_id)
    readings = 0
    try:
        while t <= end:
            for msg in fleet.messages(t, interval_s, per_message):
                pub.publish(msg)
                readings += len(msg.readings)
            t += chunk_ms
    finally:
        pub.close()
    return readings


def fetch_kpis(api_url: str, key: str | None = None, **params: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{api_url.rstrip('/')}/v1/kpis", params=params, headers=headers, timeout=30)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    # /v1/kpis carries the public care figures (only for whole public grid windows); a
    # care or operator key gets this window's care figures at its own k (audited).
    care = httpx.get(
        f"{api_url.rstrip('/')}/v1/kpis/care", params=params, headers=headers, timeout=30
    )
    if care.status_code == 200:
        data["themes"] = [care.json() if t["theme"] == "care" else t for t in data["themes"]]
    return data


def format_kpis(data: dict[str, Any]) -> str:
    """The /v1/kpis answer as a plain-text table."""
    lines = [
        f"KPIs {data['start']} .. {data['end']}"
        + (f" site={data['site']}" if data.get("site") else "")
    ]
    for theme in data["themes"]:
        lines.append(f"\n[{theme['theme']}]")
        for k in theme["kpis"]:
            if k.get("suppressed"):
                value = f"({k.get('note') or 'suppressed'})"
            elif k.get("range"):
                lo, hi = k["range"]
                value = f"{lo}-{hi} {k['unit']} (a small count, given as a range)"
            elif k["value"] is None:
                value = "(no data)"
            else:
                value = f"{k['value']:.6g} {k['unit']}"
            lines.append(f"  {k['id']:<26} {value}")
        for note in theme.get("notes", []):
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def format_portal(api_url: str, since: str = "", wait_s: float = 120.0) -> str:
    """The city's newest published day per theme, as the residents' page shows it
    (read from its open data, which carries the same figures), from a snapshot
    computed at or after ``since`` (RFC 3339 UTC) if one comes within ``wait_s``."""
    from portal.strings import THEMES_PUBLIC, kpi_label, theme_kpis, unit

    deadline = time.monotonic() + wait_s
    lines = []
    for theme in THEMES_PUBLIC:
        while True:
            r = httpx.get(f"{api_url.rstrip('/')}/open-data/{theme}-daily.json", timeout=30)
            rows = r.json()["rows"] if r.status_code == 200 else []
            city = [x for x in rows if x["district"] == "" and not x["suppressed"]]
            city = [x for x in city if any(x[k.id] for k in theme_kpis(theme))]
            fresh = bool(rows) and min(x["computed_at"] for x in rows) >= since
            if fresh or time.monotonic() > deadline:
                break
            time.sleep(1)
        if not city:
            note = (
                " (care figures appear once a local day is over: try --history-hours 30)"
                if theme == "care"
                else ""
            )
            lines.append(f"  [{theme}] no published day yet{note}")
            continue
        row = city[-1]
        so_far = "" if row["complete"] else " (so far)"
        lines.append(f"  [{theme}] {row['date']}{so_far}")
        for k in theme_kpis(theme):
            if k.headline and row[k.id] is not None:
                lines.append(f"    {kpi_label(k, 'en'):<26} {row[k.id]:.6g} {unit(k, 'en')}")
    return "\n".join(lines)
