"""``/v1/alerts``: care alert state changes (care/operator, audited)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from api import queries
from api.auth import Principal
from api.kpis import iso
from api.models import AlertsModel
from api.routes.params import AlertType, EndQ, SiteQ, StartQ
from api.state import Api


def build(api: Api) -> APIRouter:
    router = APIRouter(tags=["care"])
    care = api.require("care")

    @router.get("/v1/alerts", response_model=AlertsModel)
    def alerts(
        who: Annotated[Principal, Depends(care)],
        start: StartQ = None,
        end: EndQ = None,
        site: SiteQ = None,
        type: Annotated[AlertType | None, Query()] = None,
        state: Annotated[Literal["open", "closed"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Care alert state changes, newest first (care/operator; audited)."""
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
        return {"alerts": queries.care_alerts(api.influx, w, type, state, limit)}

    return router
