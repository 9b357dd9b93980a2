"""Response models: they shape the OpenAPI document and its examples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_KPI_EXAMPLE: Any = {
    "id": "energy_consumption_kwh",
    "value": 51234.5,
    "unit": "kWh",
    "start": "2024-05-01T00:00:00.000Z",
    "end": "2024-05-02T00:00:00.000Z",
    "definition": "Grid import: sum over meters of the non-negative steps of energy_import_kwh",
}


class KpiModel(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_KPI_EXAMPLE]})

    id: str
    value: float | None = Field(description="null when there is no data or it is suppressed")
    unit: str
    start: str
    end: str
    definition: str
    suppressed: bool | None = Field(
        None, description="true when withheld by the k-anonymity rule (care theme)"
    )
    note: str | None = None
    range: list[int] | None = Field(
        None,
        description="[lo, hi] when a small care count is published as a range, not a value",
    )


class ThemeModel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "theme": "green",
                    "start": _KPI_EXAMPLE["start"],
                    "end": _KPI_EXAMPLE["end"],
                    "site": None,
                    "kpis": [_KPI_EXAMPLE],
                    "notes": [],
                }
            ]
        }
    )

    theme: str
    start: str
    end: str
    site: str | None
    kpis: list[KpiModel]
    notes: list[str] = []


class AllKpisModel(BaseModel):
    start: str
    end: str
    site: str | None
    themes: list[ThemeModel]


class SiteModel(BaseModel):
    site: str
    kinds: list[str]


class SitesModel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"sites": [{"site": "minato", "kinds": ["energy_meter", "bus"]}]}]
        }
    )

    sites: list[SiteModel]


class DeviceModel(BaseModel):
    device_id: str = Field(description="pseudonymous device id (never a resident's name)")
    kind: str
    site: str | None
    last_seen: str
    age_s: float
    fresh: bool = Field(description="seen within the online window (MACHI_ONLINE_WINDOW_S)")


class DevicesModel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "devices": [
                        {
                            "device_id": "wb-0001",
                            "kind": "wearable",
                            "site": "hama",
                            "last_seen": "2024-05-01T09:00:00.000Z",
                            "age_s": 12.5,
                            "fresh": True,
                        }
                    ]
                }
            ]
        }
    )

    devices: list[DeviceModel]


class AlertModel(BaseModel):
    time: str
    device_id: str
    site: str | None
    type: str
    state: str
    value: float | None
    episode_ms: int | None


class AlertsModel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "alerts": [
                        {
                            "time": "2024-05-01T09:00:00.000Z",
                            "device_id": "wb-0001",
                            "site": "hama",
                            "type": "hr_high",
                            "state": "open",
                            "value": 131.0,
                            "episode_ms": 1714554000000,
                        }
                    ]
                }
            ]
        }
    )

    alerts: list[AlertModel]


class VehicleModel(BaseModel):
    vehicle_id: str
    route_id: str | None
    trip_id: str | None
    latitude: float
    longitude: float
    speed_kmh: float | None
    bearing: float | None
    timestamp: int


class VehiclesModel(BaseModel):
    header_timestamp: int
    vehicles: list[VehicleModel]
