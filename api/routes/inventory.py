"""``/v1/sites`` (public) and ``/v1/devices`` (care/operator, audited)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from api import queries
from api.auth import Principal
from api.kpis import iso
from api.models import DevicesModel, SitesModel
from api.routes.params import EndQ, SiteQ, StartQ
from api.state import Api


def build(api: Api) -> APIRouter:
    router = APIRouter(tags=["city"])
    care = api.require("care")
    public = Depends(api.require("public"))

    @router.get("/v1/sites", response_model=SitesModel, dependencies=[public])
    def sites() -> dict[str, Any]:
        """Sites (districts) that have telemetry, with the device kinds seen there."""
        found = queries.sites(api.influx)
        return {"sites": [{"site": k, "kinds": sorted(v)} for k, v in sorted(found.items())]}

    @router.get("/v1/devices", response_model=DevicesModel)
    def devices(
        who: Annotated[Principal, Depends(care)],
        kind: Annotated[Literal["energy_meter", "wearable", "bus"] | None, Query()] = None,
        start: StartQ = None,
        end: EndQ = None,
        site: SiteQ = None,
    ) -> dict[str, Any]:
        """Devices seen in the window, with last-seen time and freshness (care/operator)."""
        w = api.window(start, end, site)
        api.audit_access(
            who, "list_devices", kind=kind, site=site, start=iso(w.start), end=iso(w.end)
        )
        online = api.engine.config.online_window_s
        return {"devices": queries.devices(api.influx, w, kind, online)}

    return router
