"""The API's shared state: InfluxDB client, KPI engine, keys, audit log, cache, metrics.

Routes (``api/routes/``) reach everything through one :class:`Api` instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram

from api import queries
from api.alert_store import AlertStoreHandle
from api.audit import AuditLog
from api.auth import ANONYMOUS, KeyStore, Principal
from api.background import BackgroundCollector
from api.boundary_options import BoundaryOptions
from api.boundary_writer import BoundaryWriter
from api.cache import TtlCache
from api.care_publish import CarePublisher
from api.config import ApiConfig, KpiConfig
from api.disclosure_options import DisclosureOptions
from api.dp import DpRelease
from api.kpis import KpiEngine, Window, iso
from api.quota import Quota, QuotaOptions
from api.refresh import Refresher
from api.timeparse import TimeError, parse_time
from contract.ids import check_id
from contract.influx import InfluxV1
from contract.periodic import Periodic
from contract.settings import Settings

__all__ = ["Api"]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


class Api:
    """State shared by the routes: InfluxDB client, KPI engine, keys, audit, cache."""

    def __init__(
        self,
        settings: Settings,
        cfg: ApiConfig,
        kpi_cfg: KpiConfig,
        alerts_db: str | None = None,
        disclosure: DisclosureOptions | None = None,  # care disclosure policy
        quota: QuotaOptions | None = None,  # rate limits, expensive-query cap
        boundary: BoundaryOptions | None = None,  # the slot-boundary writer
    ) -> None:
        self.settings = settings
        self.alert_store = AlertStoreHandle(alerts_db)
        self.cfg = cfg
        self.influx = InfluxV1.from_settings(settings, timeout=10.0)
        disclosure = disclosure or DisclosureOptions()
        policy = disclosure.policy(kpi_cfg.care_k)
        self.engine = KpiEngine(
            self.influx, kpi_cfg, policy=policy, care_table_ttl_s=cfg.cache_ttl_s
        )
        self.keys = KeyStore.load(cfg.keys, cfg.keys_file)
        self.audit = AuditLog(cfg.audit_log)
        self.cache = TtlCache(cfg.cache_ttl_s)
        # Started with the app (lifespan), so a bare TestClient(app) runs without it.
        self.refresher = (
            Refresher(self.engine, self.site_ids, cfg.refresh_s) if cfg.refresh_s > 0 else None
        )
        dp = disclosure.dp()
        if dp is not None:
            self.engine.dp = DpRelease(self.influx, dp, self.site_ids)
        self.care_publisher = (
            CarePublisher(self.engine, disclosure.care_publish_s, disclosure.care_publish_tiles)
            if disclosure.care_publish_s > 0
            else None
        )
        every = (boundary or BoundaryOptions()).boundary_s
        self.boundary_writer = BoundaryWriter(self.influx, every) if every > 0 else None
        self.portal: Any = None  # the residents' page (api/routes/public.py), once built
        self.registry = CollectorRegistry()
        self.registry.register(BackgroundCollector(self.background_loops))
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
        self.quota = Quota(quota or QuotaOptions(), self.registry)

    def loops(self) -> list[Periodic]:
        """The background loops the app's lifespan starts and stops (the portal's
        refresher has its own, in api/routes/public.py)."""
        own = (self.refresher, self.care_publisher, self.boundary_writer)
        return [loop for loop in own if loop is not None]

    def background_loops(self) -> list[Periodic | None]:
        """Every background loop of this process, for ``/metrics``."""
        return [*self.loops(), getattr(self.portal, "refresher", None)]

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
            raise TimeError(f"start ({iso(start_dt)}) must be before end ({iso(end_dt)})")
        if end_dt - start_dt > timedelta(days=self.cfg.max_window_days):
            raise TimeError(f"the window is longer than {self.cfg.max_window_days} days: narrow it")
        if site is not None:
            try:
                check_id(site, "site")
            except ValueError as exc:
                raise TimeError(str(exc)) from None
        return Window(start_dt, end_dt, site)

    def site_ids(self) -> list[str]:
        """Sites that have telemetry (tag values; the index answers without a scan)."""
        return sorted(queries.sites(self.influx))

    def refreshed(self, theme: str, site: str | None) -> dict[str, Any] | None:
        hit = None if self.refresher is None else self.refresher.get(theme, site)
        if hit is not None:
            self.refreshed_hits.inc()
        return hit

    def theme(self, name: str, w: Window, public: bool = True) -> dict[str, Any]:
        key = (name, w.start, w.end, w.site, public)
        value, hit = self.cache.get_or_compute(
            key,  # uncached answers take a slot of the expensive-query cap
            lambda: self.quota.expensive(lambda: self.engine.theme(name, w, public).as_dict()),
        )
        if hit:
            self.cache_hits.inc()
        return value
