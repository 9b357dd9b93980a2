"""``/healthz``, ``/readyz`` and ``/metrics``: for the operator's probes and Prometheus."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.state import Api


def build(api: Api) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up (async: answers on the event loop, never waits for a
        threadpool thread, so a flood of KPI requests cannot starve it)."""
        return {"status": "ok"}

    @router.get("/readyz")
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

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of this API process."""
        return Response(generate_latest(api.registry), media_type=CONTENT_TYPE_LATEST)

    return router
