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
    # Present with ``state=open`` (from the alert store of ``machi alerts run``).
    alert_id: str | None = None
    priority: str | None = None
    opened: str | None = Field(None, description="when machi alerts stored it (RFC 3339)")
    tier: int | None = Field(None, description="tier notified last (1 = first; 0 = no route)")
    acked_by: str | None = Field(None, description="key id of who acknowledged it")
    acked_at: str | None = None


class NotificationModel(BaseModel):
    tier: int
    channel: str = Field(description="recipient URL without credentials or query")
    attempt_kind: str
    status: str = Field(description="intent | sent | failed (retrying) | dropped")
    attempts: int
    sent_at: str | None
    last_error: str | None


class StoredAlertModel(BaseModel):
    alert_id: str
    device_id: str
    site: str
    type: str
    priority: str
    state: str = Field(description="open | acked | resolved")
    episode_ms: int
    opened: str
    tier: int
    acked_by: str | None
    acked_at: str | None
    note: str | None
    resolved_by: str | None
    resolved_at: str | None
    closed_at: str | None = Field(description="when the episode ended at the device")
    notifications: list[NotificationModel] | None = None


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        None,
        max_length=500,
        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
        description="free text for the care team (no control characters)",
    )


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
