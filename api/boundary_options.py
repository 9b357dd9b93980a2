"""Option of the API's slot-boundary writer (``api.boundary_writer``)."""

from __future__ import annotations

from contract.options import Options, option

__all__ = ["BoundaryOptions"]


class BoundaryOptions(Options):
    boundary_s: float = option(
        300.0,
        env="MACHI_API_BOUNDARY_S",
        ge=0,
        le=3600,
        help="store the green counters interpolated at each 30-min slot boundary every N s"
        " (0 = off: the API interpolates up to 4 boundaries per answer live)",
    )
