"""``/v1/kpis``: every theme's KPIs, or one theme's, for a window."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from api.kpis import THEMES, iso
from api.models import AllKpisModel, ThemeModel
from api.routes.params import EndQ, SiteQ, StartQ, Theme
from api.state import Api


def build(api: Api) -> APIRouter:
    router = APIRouter(tags=["kpis"], dependencies=[Depends(api.require("public"))])

    @router.get("/v1/kpis", response_model=AllKpisModel)
    def all_kpis(start: StartQ = None, end: EndQ = None, site: SiteQ = None) -> dict[str, Any]:
        """Every theme's KPIs for one window."""
        if start is None and end is None and api.refresher is not None:
            hit = api.refresher.get_all(site)
            if hit is not None:
                api.refreshed_hits.inc()
                snap_end, themes = hit
                return {
                    "start": iso(snap_end - timedelta(hours=24)),
                    "end": iso(snap_end),
                    "site": site,
                    "themes": themes,
                }
        w = api.window(start, end, site)
        return {
            "start": iso(w.start),
            "end": iso(w.end),
            "site": site,
            "themes": [api.theme(t, w) for t in THEMES],
        }

    @router.get("/v1/kpis/{theme}", response_model=ThemeModel)
    def theme_kpis(
        theme: Annotated[Theme, Path(description="green, care, transit or platform")],
        start: StartQ = None,
        end: EndQ = None,
        site: SiteQ = None,
    ) -> dict[str, Any]:
        """One theme's KPIs (``start``/``end`` RFC 3339, default the last 24 h)."""
        if start is None and end is None:
            hit = api.refreshed(theme, site)
            if hit is not None:
                return hit
        return api.theme(theme, api.window(start, end, site))

    return router
