"""The city's KPI API (FastAPI): theme KPIs, sites, devices, care alerts, GTFS-RT.

``create_app`` composes the app: shared state (:class:`api.state.Api`), one router per
concern (``api/routes/``), request metrics and the error handlers that turn InfluxDB
trouble and malformed windows into answers that say what to do.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api import quota
from api.boundary_options import BoundaryOptions
from api.config import ApiConfig, KpiConfig
from api.disclosure_options import DisclosureOptions
from api.routes import alerts, inventory, kpis, ops, public, transit
from api.state import Api
from api.timeparse import TimeError, parse_time
from contract.influx import InfluxError
from contract.settings import Settings
from portal.options import PortalOptions

__all__ = ["Api", "create_app", "parse_time"]


def create_app(
    settings: Settings | None = None,
    cfg: ApiConfig | None = None,
    kpi_cfg: KpiConfig | None = None,
    *,
    alerts_db: str | None = None,
    portal: PortalOptions | None = None,
    disclosure: DisclosureOptions | None = None,
    quotas: quota.QuotaOptions | None = None,
    boundaries: BoundaryOptions | None = None,
) -> FastAPI:
    """Build the app; settings (and the alert store, ``MACHI_ALERTS_DB``) default to the
    ``MACHI_*`` environment."""
    if settings is None or cfg is None or kpi_cfg is None:
        from api.options import ApiOptions
        from contract.options import load_options, settings_of

        opts = load_options(ApiOptions)
        settings = settings or settings_of(opts)
        cfg = cfg or opts.api_config()
        kpi_cfg = kpi_cfg or opts.kpi_config()
        alerts_db = alerts_db or opts.alerts_db
    api = Api(settings, cfg, kpi_cfg, alerts_db, disclosure, quotas, boundaries)  # None: MACHI_*
    background = api.loops()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for loop in background:
            loop.start()
        try:
            yield
        finally:
            for loop in background:
                loop.stop()
            api.alert_store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="machi city KPI API",
        version="1",
        description="Theme KPIs (green, care, transit, platform) of the city, computed in "
        "InfluxDB. Care figures over fewer than k residents are suppressed; access to care "
        "alerts and per-device data is audited.",
    )
    app.state.api = api

    @app.middleware("http")
    async def metrics_mw(request: Request, call_next: Callable[..., Any]) -> Response:
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        api.latency.labels(path).observe(time.perf_counter() - t0)
        api.requests.labels(path, str(response.status_code)).inc()
        return response

    @app.exception_handler(TimeError)
    async def bad_window(_: Request, exc: TimeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(InfluxError)
    async def influx_error(_: Request, exc: InfluxError) -> JSONResponse:
        if "database not found" in exc.message:
            return JSONResponse(
                {
                    "detail": f"InfluxDB database {api.settings.influx_db!r} does not exist yet: "
                    "start `machi ingest` (it creates it) or check MACHI_INFLUX_DB"
                },
                status_code=503,
            )
        return JSONResponse({"detail": f"InfluxDB query failed: {exc.message}"}, status_code=502)

    @app.exception_handler(httpx.HTTPError)
    async def influx_down(_: Request, exc: httpx.HTTPError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"InfluxDB at {api.settings.influx_url} is unreachable: {exc}"},
            status_code=503,
        )

    quota.install(app, api.quota, api.keys)
    for module in (kpis, inventory, alerts, transit, ops):
        app.include_router(module.build(api))
    app.include_router(public.build(api, portal or PortalOptions()))
    return app
