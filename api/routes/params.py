"""Query parameters shared by several routes."""

from typing import Annotated, Literal, get_args

from fastapi import Query

from contract.ids import ID_PATTERN
from contract.rules import ALERT_TYPES, THEMES

__all__ = ["AlertType", "EndQ", "SiteQ", "StartQ", "Theme"]

# Spelled out for the type checker and OpenAPI; kept equal to contract.rules below.
Theme = Literal["green", "care", "transit", "platform"]
AlertType = Literal["hr_high", "hr_low", "spo2_low", "fall"]
if get_args(Theme) != THEMES or get_args(AlertType) != ALERT_TYPES:
    raise ImportError("api.routes.params disagrees with contract.rules: update both")

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
