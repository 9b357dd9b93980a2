"""The city's KPI API (FastAPI): theme KPIs, sites, devices, care alerts, GTFS-RT.

Everything that reaches InfluxQL is validated first: ids against ``contract.ids``,
times parsed as RFC 3339 and re-formatted by us, enums by FastAPI; string values are
then quoted with ``contract.influx.quote_str``.
"""

# ruff: noqa: S608 -- queries are built from constants and validated, quoted values only.

import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.audit import AuditLog
from api.auth import ANONYMOUS, KeyStore, Principal
from api.config import ApiConfig, KpiConfig
from api.gtfsrt import vehicle_feed
from api.kpis import THEMES, KpiEngine, Window, iso
from api.models import (
    AlertsModel,
    AllKpisModel,
    DevicesModel,
    SitesModel,
    ThemeModel,
    VehiclesModel,
)
from api.refresh import Refresher
from contract.events import CARE_ALERT
from contract.ids import ID_PATTERN, check_id
from contract.influx import InfluxError, InfluxV1, quote_ident, quote_str
from contract.schema import KINDS
from contract.settings import Settings

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})\Z"
)
Theme = Literal["green", "care", "transit", "platform"]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

StartQ = Annotated[
    str | None,
    Query(
        description="RFC 3339 start (inclusive); default end - 24 h",
        examples=["2024-05-01T00:00:00Z"],
    ),
]
EndQ = Annotated[
    str | None,
    Query(description="RFC 3339 end (exclusive); default now", examples=["2024-05-02T00:00:00Z"]),
]
SiteQ = Annotated[
    str | None,
    Query(description=f"site id ({ID_PATTERN})", examples=["minato"], max_length=64),
]


def parse_time(value: str, name: str) -> datetime:
    """An RFC 3339 timestamp with a zone, or a 422 that says what is wrong."""
    if not _RFC3339.match(value):
        raise HTTPException(
            422,
            f"{name}={value!r} is not an RFC 3339 timestamp with a time zone, "
            "e.g. 2024-05-01T00:00:00Z or 2024-05-01T09:00:00+09:00",
        )
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise HTTPException(422, f"{name}={value!r}: {exc}") from None


class TtlCache:
    """A small thread-safe TTL cache of computed answers."""

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get_or_compute(self, key: Any, compute: Callable[[], Any]) -> tuple[Any, bool]:
        now = time.monotonic()
        if self.ttl_s > 0:
            with self._lock:
                hit = self._data.get(key)
                if hit is not None and hit[0] > now:
                    return hit[1], True
        value = compute()
        if self.ttl_s > 0:
            with self._lock:
                if len(self._data) >= self.max_entries:
                    self._data = {k: v for k, v in self._data.items() if v[0] > now}
                    if len(self._data) >= self.max_entries:
                        self._data.clear()
                self._data[key] = (now + self.ttl_s, value)
        return value, False


class Api:
    """State shared by the routes: InfluxDB client, KPI engine, keys, audit, cache."""

    def __init__(self, settings: Settings, cfg: ApiConfig, kpi_cfg: KpiConfig) -> None:
        self.settings = settings
        self.cfg = cfg
        self.influx = InfluxV1.from_settings(settings, timeout=10.0)
        self.engine = KpiEngine(self.influx, kpi_cfg)
        self.keys = KeyStore.load(cfg.keys, cfg.keys_file)
        self.audit = AuditLog(cfg.audit_log)
        self.cache = TtlCache(cfg.cache_ttl_s)
        # Started with the app (lifespan), so a bare TestClient(app) runs without it.
        self.refresher = (
            Refresher(self.engine, self.site_ids, cfg.refresh_s) if cfg.refresh_s > 0 else None
        )
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "machi_api_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "machi_api_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.cache_hits = Counter(
            "machi_api_cache_hits_total", "KPI answers served from cache", registry=self.registry
        )
        self.refreshed_hits = Counter(
            "machi_api_refreshed_hits_total",
            "default-window KPI answers served from the background refresher",
            registry=self.registry,
        )
        self.audit_entries = Counter(
            "machi_api_audit_entries_total", "care-data accesses audited", registry=self.registry
        )

    def audit_access(self, who: Principal, action: str, **what: Any) -> None:
        """Append a care-data access to the audit log and count it."""
        self.audit.record(who.key_id, who.scope, action, **what)
        self.audit_entries.inc()

    # -- auth -----------------------------------------------------------------------

    def principal(
        self, bearer: HTTPAuthorizationCredentials | None, api_key: str | None
    ) -> Principal:
        secret = bearer.credentials if bearer is not None else api_key
        if not secret:
            if self.cfg.anonymous:
                return ANONYMOUS
            raise HTTPException(
                401,
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = self.keys.lookup(secret)
        if found is None:
            raise HTTPException(
                401, "unknown API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return found

    def require(self, scope: str) -> Callable[..., Principal]:
        def dep(
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
            api_key: Annotated[str | None, Depends(_api_key)],
        ) -> Principal:
            who = self.principal(bearer, api_key)
            if who is ANONYMOUS and not who.allows(scope):
                raise HTTPException(
                    401,
                    f"this route needs an API key with scope {scope!r} or 'operator'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not who.allows(scope):
                raise HTTPException(
                    403,
                    f"this key has scope {who.scope!r}; this route needs {scope!r}"
                    + (" or 'operator'" if scope == "care" else ""),
                )
            return who

        return dep

    # -- windows --------------------------------------------------------------------

    def window(self, start: str | None, end: str | None, site: str | None) -> Window:
        if end is None:
            now = time.time()
            # Round the default end down so that repeated default requests share a cache entry.
            step = max(self.cfg.cache_ttl_s, 1.0)
            end_dt = datetime.fromtimestamp(now - now % step, UTC)
        else:
            end_dt = parse_time(end, "end")
        start_dt = parse_time(start, "start") if start is not None else end_dt - timedelta(hours=24)
        if start_dt >= end_dt:
            raise HTTPException(422, f"start ({iso(start_dt)}) must be before end ({iso(end_dt)})")
        if end_dt - start_dt > timedelta(days=self.cfg.max_window_days):
            raise HTTPException(
                422, f"the window is longer than {self.cfg.max_window_days} days: narrow it"
            )
        if site is not None:
            try:
                check_id(site, "site")
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
        return Window(start_dt, end_dt, site)

    def site_ids(self) -> list[str]:
        """Sites that have telemetry (tag values; the index answers without a scan)."""
        series = self.influx.query(
            'SHOW TAG VALUES FROM energy_meter, wearable, bus WITH KEY = "site"'
        )
        return sorted({row[1] for s in series for row in s.get("values", [])})

    def refreshed(self, theme: str, site: str | None) -> dict[str, Any] | None:
        hit = None if self.refresher is None else self.refresher.get(theme, site)
        if hit is not None:
            self.refreshed_hits.inc()
        return hit

    def theme(self, name: str, w: Window) -> dict[str, Any]:
        key = (name, w.start, w.end, w.site)
        value, hit = self.cache.get_or_compute(key, lambda: self.engine.theme(name, w).as_dict())
        if hit:
            self.cache_hits.inc()
        return value


def create_app(
    settings: Settings | None = None,
    cfg: ApiConfig | None = None,
    kpi_cfg: KpiConfig | None = None,
) -> FastAPI:
    """Build the app; settings default to the ``MACHI_*`` environment."""
    api = Api(
        settings or Settings.from_env(),
        cfg or ApiConfig.from_env(),
        kpi_cfg or KpiConfig.from_env(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if api.refresher is not None:
            api.refresher.start()
        try:
            yield
        finally:
            if api.refresher is not None:
                api.refresher.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="machi city KPI API",
        version="1",
        description="Theme KPIs (green, care, transit, platform) of the city, computed in "
        "InfluxDB. Care figures over fewer than k residents are suppressed; access to care "
        "alerts and per-device data is audited.",
    )
    app.state.api = api
    public = Depends(api.require("public"))
    care = api.require("care")

    @app.middleware("http")
    async def metrics_mw(request: Request, call_next: Callable[..., Any]) -> Response:
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        api.latency.labels(path).observe(time.perf_counter() - t0)
        api.requests.labels(path, str(response.status_code)).inc()
        return response

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

    @app.get("/v1/kpis", response_model=AllKpisModel, dependencies=[public], tags=["kpis"])
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

    @app.get("/v1/kpis/{theme}", response_model=ThemeModel, dependencies=[public], tags=["kpis"])
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

    @app.get("/v1/sites", response_model=SitesModel, dependencies=[public], tags=["city"])
    def sites() -> dict[str, Any]:
        """Sites (districts) that have telemetry, with the device kinds seen there."""
        series = api.influx.query(
            'SHOW TAG VALUES FROM energy_meter, wearable, bus WITH KEY = "site"'
        )
        found: dict[str, set[str]] = {}
        for s in series:
            for row in s.get("values", []):
                found.setdefault(row[1], set()).add(s["name"])
        return {"sites": [{"site": k, "kinds": sorted(v)} for k, v in sorted(found.items())]}

    @app.get("/v1/devices", response_model=DevicesModel, tags=["city"])
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
            who,
            "list_devices",
            kind=kind,
            site=site,
            start=iso(w.start),
            end=iso(w.end),
        )
        kinds = [kind] if kind else list(KINDS)
        q = f"SELECT LAST(seq) FROM {', '.join(kinds)} WHERE {w.where()} GROUP BY device_id, site"
        now_ms = time.time() * 1000
        window_s = api.engine.config.online_window_s
        out = []
        for s in api.influx.query(q):
            tags = s.get("tags", {})
            for row in s.get("values", []):
                age = max(0.0, (now_ms - row[0]) / 1000)
                out.append(
                    {
                        "device_id": tags.get("device_id", ""),
                        "kind": s["name"],
                        "site": tags.get("site") or None,
                        "last_seen": iso(datetime.fromtimestamp(row[0] / 1000, UTC)),
                        "age_s": round(age, 3),
                        "fresh": age <= window_s,
                    }
                )
        out.sort(key=lambda d: (d["kind"], d["device_id"]))
        return {"devices": out}

    @app.get("/v1/alerts", response_model=AlertsModel, tags=["care"])
    def alerts(
        who: Annotated[Principal, Depends(care)],
        start: StartQ = None,
        end: EndQ = None,
        site: SiteQ = None,
        type: Annotated[Literal["hr_high", "hr_low", "spo2_low", "fall"] | None, Query()] = None,
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
        where = w.where()
        if type is not None:
            where += f" AND {quote_ident('type')} = {quote_str(type)}"
        if state is not None:
            where += f" AND state = {quote_str(state)}"
        q = (
            'SELECT device_id, site, "type", state, value, episode_ms '
            f"FROM {CARE_ALERT} WHERE {where} ORDER BY time DESC LIMIT {int(limit)}"
        )
        rows = api.influx.rows(q)
        return {
            "alerts": [
                {
                    "time": iso(datetime.fromtimestamp(r["time"] / 1000, UTC)),
                    "device_id": r.get("device_id") or "",
                    "site": r.get("site"),
                    "type": r.get("type") or "",
                    "state": r.get("state") or "",
                    "value": r.get("value"),
                    "episode_ms": r.get("episode_ms"),
                }
                for r in rows
            ]
        }

    @app.get(
        "/v1/transit/vehicle-positions",
        dependencies=[public],
        tags=["transit"],
        responses={
            200: {
                "content": {
                    "application/x-protobuf": {},
                    "application/json": {"schema": VehiclesModel.model_json_schema()},
                },
                "description": "GTFS-Realtime FeedMessage (protobuf), or JSON with format=json",
            }
        },
    )
    def vehicle_positions(
        format: Annotated[Literal["protobuf", "json"], Query()] = "protobuf",
        max_age_s: Annotated[int, Query(ge=10, le=86400)] = 600,
        site: SiteQ = None,
    ) -> Response:
        """Newest fix of every bus seen in the last ``max_age_s`` seconds."""
        now = time.time()
        w = api.window(
            iso(datetime.fromtimestamp(now - max_age_s, UTC)),
            iso(datetime.fromtimestamp(now + 1, UTC)),
            site,
        )
        q = (
            "SELECT lat, lon, speed_kmh, heading_deg, trip_id FROM bus "
            f"WHERE {w.where()} GROUP BY device_id, route_id ORDER BY time DESC LIMIT 1"
        )
        vehicles = [
            {
                "vehicle_id": r["device_id"],
                "route_id": r.get("route_id"),
                "trip_id": r.get("trip_id"),
                "latitude": r["lat"],
                "longitude": r["lon"],
                "speed_kmh": r.get("speed_kmh"),
                "bearing": r.get("heading_deg"),
                "timestamp": int(r["time"] // 1000),
            }
            for r in api.influx.rows(q)
            if r.get("lat") is not None and r.get("lon") is not None
        ]
        if format == "json":
            body = VehiclesModel(header_timestamp=int(now), vehicles=vehicles)  # type: ignore[arg-type]
            return JSONResponse(body.model_dump())
        return Response(vehicle_feed(vehicles, int(now)), media_type="application/x-protobuf")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        """InfluxDB answers; 503 otherwise."""
        if api.influx.ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {
                "status": "not ready",
                "detail": f"InfluxDB at {api.settings.influx_url} does not answer",
            },
            status_code=503,
        )

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of this API process."""
        return Response(generate_latest(api.registry), media_type=CONTENT_TYPE_LATEST)

    return app
