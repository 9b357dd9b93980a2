"""Options of the API's care disclosure control (rules in ``contract.disclosure``).

The public k stays ``MACHI_CARE_K`` (``api.config.KpiConfig.care_k``, default
``contract.rules.CARE_K_DEFAULT`` = 10); these add the rest of the policy.
"""

from __future__ import annotations

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
