"""``/v1/kpis``: every theme's KPIs, or one theme's, for a window.

Care figures pass through ``contract.disclosure`` (k, small counts, complementary
suppression). Public callers get them only for whole tiles of the public grid (422
otherwise on ``/v1/kpis/care``); care/operator keys get any window at their own k, and
each such access is audited. ``/v1/kpis`` gives every caller the public care figures.
"""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from api.auth import Principal
from api.kpis import THEMES, Window, iso
from api.models import AllKpisModel, ThemeModel
from api.refresh import CARE_SCOPE
from api.routes.params import EndQ, SiteQ, StartQ, Theme
from api.state import Api
from api.timeparse import TimeError


def build(api: Api) -> APIRouter:
    public = api.require("public")
    router = APIRouter(tags=["kpis"], dependencies=[Depends(public)])
    policy = api.engine.policy

    @router.get("/v1/kpis", response_model=AllKpisModel)
    def all_kpis(start: StartQ = None, end: EndQ = None, site: SiteQ = None) -> dict[str, Any]:
        """Every theme's KPIs for one window (care: the public figures, see /v1/kpis/care)."""
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
        themes = []
        for t in THEMES:
            if t == "care" and start is None and end is None:
                themes.append(api.theme(t, Window(*policy.last_tile(w.end), site)))
            else:  # an off-grid window's care figures come back suppressed, with the rule
                themes.append(api.theme(t, w))
        return {"start": iso(w.start), "end": iso(w.end), "site": site, "themes": themes}

    @router.get("/v1/kpis/{theme}", response_model=ThemeModel)
    def theme_kpis(
        theme: Annotated[Theme, Path(description="green, care, transit or platform")],
        who: Annotated[Principal, Depends(public)],
        start: StartQ = None,
        end: EndQ = None,
        site: SiteQ = None,
    ) -> dict[str, Any]:
        """One theme's KPIs (``start``/``end`` RFC 3339, default the last 24 h; public care
        figures: one tile of the public grid, default the newest complete one)."""
        if theme == "care":
            return care(who, start, end, site)
        if start is None and end is None:
            hit = api.refreshed(theme, site)
            if hit is not None:
                return hit
        return api.theme(theme, api.window(start, end, site))

    def care(who: Principal, start: str | None, end: str | None, site: str | None) -> Any:
        if who.scope == "public":
            if start is None and end is None:
                hit = api.refreshed("care", site)
                if hit is not None:
                    return hit
                w = api.window(None, None, site)
                return api.theme("care", Window(*policy.last_tile(w.end), site))
            if start is None or end is None:
                raise TimeError(f"give both start and end: {policy.grid_rule()}")
            w = api.window(start, end, site)
            if not policy.on_grid(w.start, w.end):
                raise TimeError(
                    f"[{iso(w.start)}, {iso(w.end)}) is not a public care window: "
                    + policy.grid_rule()
                )
            return api.theme("care", w)
        if start is None and end is None:
            hit = api.refreshed(CARE_SCOPE, site)
            if hit is not None:
                api.audit_access(who, "care_kpis", site=site, start=hit["start"], end=hit["end"])
                return hit
        w = api.window(start, end, site)
        api.audit_access(who, "care_kpis", site=site, start=iso(w.start), end=iso(w.end))
        return api.theme("care", w, public=False)

    return router
