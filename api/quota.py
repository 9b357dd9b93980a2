"""Quotas: per-key and per-client rate limits for public callers, and a cap on
concurrent uncached (expensive) KPI computations for everyone.

* Rate limits are token buckets checked in a middleware, before any route runs, so a
  refused request costs no threadpool thread and no InfluxDB work: 429 with
  ``Retry-After`` (whole seconds until one token is back). Public keys are limited per
  key, and every public caller (keyed or anonymous) per client address. Care and
  operator keys and the ops routes (``/healthz``, ``/readyz``, ``/metrics``) are not.
* The expensive cap is a semaphore around computing a KPI answer that is in neither
  the refresher's snapshot nor the cache. A request that cannot get a slot within
  ``expensive_wait_s`` gets 429 at once, so a flood of uncached windows holds at most
  ``max_expensive`` threads and InfluxDB queries; the refreshed default answers and
  ``/healthz`` never wait for it.

The client address is the TCP peer. Behind a reverse proxy every caller shares the
proxy's address: set per-client limits there, or raise ``MACHI_API_RATE_CLIENT``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter

from contract.options import Options, option

if TYPE_CHECKING:
    from api.auth import KeyStore

__all__ = ["Busy", "Quota", "QuotaOptions", "TokenBuckets", "install"]

T = TypeVar("T")
#: Routes for probes and scrapers: never rate-limited (they must answer under a flood).
EXEMPT = ("/healthz", "/readyz", "/metrics")


class QuotaOptions(Options):
    rate_key: float = option(
        2.0,
        env="MACHI_API_RATE_KEY",
        ge=0,
        help="requests per second per public API key (0 = no per-key limit)",
    )
    rate_client: float = option(
        2.0,
        env="MACHI_API_RATE_CLIENT",
        ge=0,
        help="requests per second per client address for public callers (0 = no limit)",
    )
    rate_burst: int = option(
        20, env="MACHI_API_RATE_BURST", ge=1, le=100_000, help="bucket size: requests in a burst"
    )
    max_expensive: int = option(
        2,
        env="MACHI_API_MAX_EXPENSIVE",
        ge=1,
        le=64,
        help="uncached KPI computations running at once; more get 429",
    )
    expensive_wait_s: float = option(
        0.05,
        env="MACHI_API_EXPENSIVE_WAIT_S",
        ge=0,
        le=30,
        help="how long a request may wait for a computation slot before its 429",
    )


class Busy(Exception):
    """No slot for an expensive computation: answered 429 with ``Retry-After``."""

    def __init__(self, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens/s, at most ``burst``; thread-safe."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 if a request may go now, else seconds until it may (nothing taken)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self.max_keys and key not in self._buckets:
                    # Bound memory under address floods: full buckets carry no state.
                    self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Quota:
    """The limits of one API process, with their Prometheus counters."""

    def __init__(self, opts: QuotaOptions, registry: CollectorRegistry | None = None) -> None:
        self.opts = opts
        self.per_key = TokenBuckets(opts.rate_key, opts.rate_burst)
        self.per_client = TokenBuckets(opts.rate_client, opts.rate_burst)
        self._slots = threading.BoundedSemaphore(opts.max_expensive)
        self.refused = Counter(
            "machi_api_quota_refused_total",
            "requests answered 429 by the quotas, by limit",
            ["limit"],
            registry=registry,
        )

    def check(self, scope: str, key_id: str, client: str) -> tuple[str, float] | None:
        """(limit, retry-after seconds) if a caller of ``scope`` must wait, else None."""
        if scope != "public":
            return None
        if key_id != "anonymous":
            wait = self.per_key.take("k:" + key_id)
            if wait > 0:
                return "key", wait
        wait = self.per_client.take("c:" + client)
        return ("client", wait) if wait > 0 else None

    def expensive(self, compute: Callable[[], T]) -> T:
        """Run ``compute`` in one of the ``max_expensive`` slots, or raise Busy."""
        if not self._slots.acquire(timeout=self.opts.expensive_wait_s):
            self.refused.labels("expensive").inc()
            raise Busy(
                1,
                f"{self.opts.max_expensive} uncached KPI computations are already running: "
                "retry later, or ask for the default window (served from memory)",
            )
        try:
            return compute()
        finally:
            self._slots.release()


def _too_many(detail: str, retry_after: float) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def install(app: FastAPI, quota: Quota, keys: KeyStore) -> None:
    """Add the rate-limit middleware and the Busy handler to ``app``."""

    @app.middleware("http")
    async def rate_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # The API (/v1/) pays; the residents' pages and open data are served from the
        # portal's precomputed snapshot (no InfluxDB work) and /feedback has its own limit.
        if request.url.path in EXEMPT or not request.url.path.startswith("/v1/"):
            return await call_next(request)
        secret = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            secret = auth[7:].strip()
        found = keys.lookup(secret) if secret else None
        # Unknown keys count as public: they get their 401 from the route, but their
        # address pays for the attempt, so guessing keys is rate-limited too.
        scope, kid = (found.scope, found.key_id) if found else ("public", "anonymous")
        client = request.client.host if request.client else "unknown"
        refused = quota.check(scope, kid, client)
        if refused is not None:
            limit, wait = refused
            quota.refused.labels(limit).inc()
            per = "API key" if limit == "key" else "client address"
            return _too_many(f"rate limit of this {per} exceeded: retry after the delay", wait)
        return await call_next(request)

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> Any:
        return _too_many(exc.detail, exc.retry_after)
