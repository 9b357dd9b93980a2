"""Settings of the KPI API, read through the one loader (``contract.settings``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contract import emission
from contract.settings import ConfigError, env, env_bool, env_float, env_int

#: The seed city's grid (TEPCO's area), from the table with its source
#: (``contract.emission``, docs/kpis.md).
DEFAULT_EMISSION_FACTOR_T_PER_KWH = emission.DEFAULT.t_per_kwh


def _emission_default() -> float:
    """``MACHI_GRID_AREA`` / ``MACHI_GRID_FISCAL_YEAR`` pick a listed factor."""
    area = env("MACHI_GRID_AREA", emission.DEFAULT_AREA)
    year = env_int("MACHI_GRID_FISCAL_YEAR", 0)
    try:
        return emission.factor(area, year or None).t_per_kwh
    except ValueError as exc:
        raise ConfigError(f"MACHI_GRID_AREA={area} MACHI_GRID_FISCAL_YEAR={year}: {exc}") from None


@dataclass(frozen=True)
class KpiConfig:
    """Tunables of the KPI definitions (documented in docs/kpis.md)."""

    emission_factor_t_per_kwh: float = DEFAULT_EMISSION_FACTOR_T_PER_KWH
    care_k: int = 5
    online_window_s: int = 300
    on_time_early_s: int = 60
    on_time_late_s: int = 300
    max_headway_s: int = 7200

    def __post_init__(self) -> None:
        if not 0 <= self.emission_factor_t_per_kwh < 0.01:
            raise ConfigError(
                f"grid emission factor {self.emission_factor_t_per_kwh} t-CO2/kWh is implausible:"
                " give it in t-CO2/kWh (e.g. 0.000491), not kg-CO2/kWh"
            )
        if self.care_k < 1:
            raise ConfigError(f"MACHI_CARE_K={self.care_k} must be at least 1")

    @classmethod
    def from_env(cls) -> KpiConfig:
        return cls(
            emission_factor_t_per_kwh=env_float("MACHI_GRID_EMISSION_FACTOR", _emission_default()),
            care_k=env_int("MACHI_CARE_K", 5),
            online_window_s=env_int("MACHI_ONLINE_WINDOW_S", 300),
        )


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

    @classmethod
    def from_env(cls, **overrides: object) -> ApiConfig:
        values: dict[str, object] = {
            "host": env("MACHI_API_HOST", cls.host),
            "port": env_int("MACHI_API_PORT", cls.port),
            "keys": os.environ.get("MACHI_API_KEYS", ""),
            "keys_file": os.environ.get("MACHI_API_KEYS_FILE") or None,
            "anonymous": env_bool("MACHI_API_ANONYMOUS", False),
            "cache_ttl_s": env_float("MACHI_API_CACHE_TTL", cls.cache_ttl_s),
            "refresh_s": env_float("MACHI_API_REFRESH_S", cls.refresh_s),
            "audit_log": Path(env("MACHI_API_AUDIT_LOG", str(cls.audit_log))),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.refresh_s < 0:
            raise ConfigError(
                f"MACHI_API_REFRESH_S={self.refresh_s} must be 0 (off) or a number of seconds"
            )
