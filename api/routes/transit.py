"""``/v1/transit/vehicle-positions``: GTFS-Realtime vehicle positions (public)."""

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from api import queries
from api.gtfsrt import vehicle_feed
from api.kpis import iso
from api.models import VehiclesModel
from api.routes.params import SiteQ
from api.state import Api


def build(api: Api) -> APIRouter:
    router = APIRouter(tags=["transit"], dependencies=[Depends(api.require("public"))])

    @router.get(
        "/v1/transit/vehicle-positions",
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
        vehicles = queries.vehicles(api.influx, w)
        if format == "json":
            body = VehiclesModel(header_timestamp=int(now), vehicles=vehicles)  # type: ignore[arg-type]
            return JSONResponse(body.model_dump())
        return Response(vehicle_feed(vehicles, int(now)), media_type="application/x-protobuf")

    return router
