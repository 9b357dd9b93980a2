"""The KPI API's runtime configuration (built from the option table in ``api/options.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contract import emission
from contract.rules import CARE_K_DEFAULT, ON_TIME_EARLY_S, ON_TIME_LATE_S, check_care_k
from contract.settings import ConfigError

#: The seed city's grid (TEPCO's area), from the table with its source
#: (``contract.emission``, docs/kpis.md).
DEFAULT_EMISSION_FACTOR_T_PER_KWH = emission.DEFAULT.t_per_kwh


def emission_factor(area: str, fiscal_year: int | None) -> float:
    """The listed factor of a grid area and fiscal year (``--grid-area``/``--grid-fiscal-year``)."""
    try:
        return emission.factor(area, fiscal_year).t_per_kwh
    except ValueError as exc:
        raise ConfigError(
            f"--grid-area / MACHI_GRID_AREA = {area!r}, fiscal year {fiscal_year}: {exc}"
        ) from None


@dataclass(frozen=True)
class KpiConfig:
    """Tunables of the KPI definitions (documented in docs/kpis.md)."""

    emission_factor_t_per_kwh: float = DEFAULT_EMISSION_FACTOR_T_PER_KWH
    care_k: int = CARE_K_DEFAULT
    online_window_s: int = 300
    on_time_early_s: int = ON_TIME_EARLY_S
    on_time_late_s: int = ON_TIME_LATE_S
    max_headway_s: int = 7200

    def __post_init__(self) -> None:
        if not 0 <= self.emission_factor_t_per_kwh < 0.01:
            raise ConfigError(
                f"grid emission factor {self.emission_factor_t_per_kwh} t-CO2/kWh is implausible:"
                " give it in t-CO2/kWh (e.g. 0.000491), not kg-CO2/kWh"
            )
        try:
            check_care_k(self.care_k)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class ApiConfig:
    """HTTP-side settings: bind address, keys, cache and audit log."""

    host: str = "127.0.0.1"
    port: int = 8000
    keys: str = ""
    keys_file: str | None = None
    anonymous: bool = False
    cache_ttl_s: float = 10.0
    #: Recompute the default answers (last 24 h, city and each site) every N s; 0 = off.
    refresh_s: float = 30.0
    audit_log: Path = Path(".machi/audit/api-audit.jsonl")
    max_window_days: int = 31

    def __post_init__(self) -> None:
        if self.refresh_s < 0:
            raise ConfigError(
                f"MACHI_API_REFRESH_S={self.refresh_s} must be 0 (off) or a number of seconds"
            )
