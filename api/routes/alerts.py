"""``/v1/alerts``: care alert state changes and the open alerts people act on
(care/operator, audited).

Without ``state`` (or with ``state=closed``) the list is the InfluxDB history of episode
state changes, as before. ``state=open`` lists the alerts ``machi alerts run`` holds open
(not yet resolved, acknowledged or not) from its store, with their tier and who
acknowledged them. ``ack`` stops the escalation, ``resolve`` closes the alert.
"""

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query

from alerts.store import NOTE_MAX, AlertStore
from api import queries
from api.auth import Principal
from api.kpis import iso
from api.models import AckBody, AlertsModel, StoredAlertModel
from api.routes.params import AlertType, EndQ, SiteQ, StartQ
from api.state import Api

AlertId = Annotated[
    str,
    Path(description="alert id (24 hex digits)", pattern=r"^[0-9a-f]{24}$", examples=["0" * 24]),
]
assert NOTE_MAX == 500  # AckBody.note's max_length


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else iso(datetime.fromtimestamp(ms / 1000, UTC))


def _listed(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": _iso_ms(r["opened_ms"]),
        "device_id": r["device_id"],
        "site": r["site"],
        "type": r["type"],
        "state": r["state"],
        "value": None,
        "episode_ms": r["episode_ms"],
        "alert_id": r["alert_id"],
        "priority": r["priority"],
        "opened": _iso_ms(r["opened_ms"]),
        "tier": r["tier"],
        "acked_by": r["acked_by"],
        "acked_at": _iso_ms(r["acked_ms"]),
    }


def _stored(r: dict[str, Any], notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {
        k: r[k]
        for k in (
            "alert_id", "device_id", "site", "type", "priority", "state", "episode_ms",
            "tier", "acked_by", "note", "resolved_by",
        )
    }  # fmt: skip
    out.update(
        opened=_iso_ms(r["opened_ms"]),
        acked_at=_iso_ms(r["acked_ms"]),
        resolved_at=_iso_ms(r["resolved_ms"]),
        closed_at=_iso_ms(r["closed_ms"]),
    )
    if notes is not None:
        out["notifications"] = [
            {
                "tier": n["tier"],
                "channel": n["channel"],
                "attempt_kind": n["attempt_kind"],
                "status": n["status"],
                "attempts": n["attempts"],
                "sent_at": _iso_ms(n["sent_ms"]),
                "last_error": n["last_error"],
            }
            for n in notes
        ]
    return out


def build(api: Api) -> APIRouter:
    router = APIRouter(tags=["care"])
    care = api.require("care")

    def store() -> AlertStore:
        return api.alert_store.get()

    @router.get("/v1/alerts", response_model=AlertsModel, response_model_exclude_none=False)
    def alerts(
        who: Annotated[Principal, Depends(care)],
        start: StartQ = None,
        end: EndQ = None,
        site: SiteQ = None,
        type: Annotated[AlertType | None, Query()] = None,
        state: Annotated[Literal["open", "closed"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Care alert state changes, newest first; ``state=open``: the open alerts
        (any age; start/end do not apply) with tier and acknowledgement
        (care/operator; audited)."""
        w = api.window(start, end, site)
        api.audit_access(
            who,
            "list_care_alerts",
            site=site,
            type=type,
            state=state,
            start=iso(w.start),
            end=iso(w.end),
            limit=limit,
        )
        if state == "open":
            rows = [r for r in store().unresolved(site, 1000) if type is None or r["type"] == type]
            return {"alerts": [_listed(r) for r in rows[:limit]]}
        return {"alerts": queries.care_alerts(api.influx, w, type, state, limit)}

    @router.get("/v1/alerts/{alert_id}", response_model=StoredAlertModel)
    def alert(who: Annotated[Principal, Depends(care)], alert_id: AlertId) -> dict[str, Any]:
        """One alert with its notifications (care/operator; audited)."""
        api.audit_access(who, "read_care_alert", alert_id=alert_id)
        row = store().get(alert_id)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return _stored(row, store().notifications_of(alert_id))

    def act(who: Principal, alert_id: str, body: AckBody | None, action: str) -> dict[str, Any]:
        note = body.note if body is not None else None
        api.audit_access(who, action, alert_id=alert_id, note_chars=len(note or ""))
        s = store()
        fn = s.ack if action == "ack_care_alert" else s.resolve
        row = fn(alert_id, who.key_id, note, int(time.time() * 1000))
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return _stored(row)

    @router.post("/v1/alerts/{alert_id}/ack", response_model=StoredAlertModel)
    def ack(
        who: Annotated[Principal, Depends(care)],
        alert_id: AlertId,
        body: Annotated[AckBody | None, Body()] = None,
    ) -> dict[str, Any]:
        """Acknowledge an open alert: escalation stops (care/operator; audited).
        Acknowledging an acknowledged or resolved alert changes nothing."""
        return act(who, alert_id, body, "ack_care_alert")

    @router.post("/v1/alerts/{alert_id}/resolve", response_model=StoredAlertModel)
    def resolve(
        who: Annotated[Principal, Depends(care)],
        alert_id: AlertId,
        body: Annotated[AckBody | None, Body()] = None,
    ) -> dict[str, Any]:
        """Close an alert (also acknowledges it if nobody had) (care/operator; audited)."""
        return act(who, alert_id, body, "resolve_care_alert")

    return router
