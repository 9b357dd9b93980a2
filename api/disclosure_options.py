"""Options of the API's care disclosure control (rules in ``contract.disclosure``).

The public k stays ``MACHI_CARE_K`` (``api.config.KpiConfig.care_k``, default
``contract.rules.CARE_K_DEFAULT`` = 10); these add the rest of the policy.
"""

from __future__ import annotations

from api.dp import DpPolicy
from contract.disclosure import (
    GRID_H_DEFAULT,
    GRID_H_MIN,
    GRID_OFFSET_H_DEFAULT,
    SMALL_COUNT_DEFAULT,
    Policy,
)
from contract.options import Options, option
from contract.rules import CARE_K_MIN
from contract.settings import ConfigError

__all__ = ["DisclosureOptions"]


class DisclosureOptions(Options):
    care_k_care: int | None = option(
        None,
        env="MACHI_CARE_K_CARE",
        ge=CARE_K_MIN,
        help="k for care/operator keys (default: the public MACHI_CARE_K); never below 5",
    )
    care_small_count: int = option(
        SMALL_COUNT_DEFAULT,
        env="MACHI_CARE_SMALL_COUNT",
        ge=1,
        le=1000,
        help="public alert counts under this are published as a range [0, N-1]",
    )
    care_grid_h: int = option(
        GRID_H_DEFAULT,
        env="MACHI_CARE_GRID_H",
        ge=GRID_H_MIN,
        le=24 * 31,
        help="public care windows: fixed, non-overlapping tiles of this many hours",
    )
    care_grid_offset_h: int = option(
        GRID_OFFSET_H_DEFAULT,
        env="MACHI_CARE_GRID_OFFSET_H",
        ge=0,
        le=24 * 31 - 1,
        help="tiles start this many hours after 00:00 UTC (15 = 00:00 JST, the city's day)",
    )

    care_publish_s: float = option(
        300.0,
        env="MACHI_CARE_PUBLISH_S",
        ge=0,
        le=86400,
        help="seconds between rounds of the care publisher, which writes the protected "
        "figures of each public tile for the Grafana care boards (0 = off)",
    )
    care_publish_tiles: int = option(
        7,
        env="MACHI_CARE_PUBLISH_TILES",
        ge=1,
        le=400,
        help="how many of the newest complete public tiles each publisher round rewrites "
        "(late data lands in them)",
    )

    care_dp_epsilon: float | None = option(
        None,
        env="MACHI_CARE_DP_EPSILON",
        gt=0,
        le=10,
        help="publish public care counts with differential privacy (OpenDP) at this "
        "epsilon per tile instead of exact-or-withheld (default: off)",
    )
    care_dp_max_alerts: int = option(
        3,
        env="MACHI_CARE_DP_MAX_ALERTS",
        ge=1,
        le=100,
        help="differential privacy: alert episodes of one resident counted per tile",
    )
    care_dp_settle_s: float = option(
        3600.0,
        env="MACHI_CARE_DP_SETTLE_S",
        ge=0,
        le=7 * 86400,
        help="differential privacy: a tile is released (once) this long after it ends",
    )

    def dp(self) -> DpPolicy | None:
        if self.care_dp_epsilon is None:
            return None
        return DpPolicy(self.care_dp_epsilon, self.care_dp_max_alerts, self.care_dp_settle_s)

    def policy(self, k_public: int) -> Policy:
        try:
            return Policy(
                k_public=k_public,
                k_care=k_public if self.care_k_care is None else self.care_k_care,
                small_count=self.care_small_count,
                grid_h=self.care_grid_h,
                offset_h=self.care_grid_offset_h,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
