"""``machi api``'s option table: one declaration per option (see contract.options)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from alerts.options import AlertsStoreOptions
from api.config import ApiConfig, KpiConfig, emission_factor
from contract import emission
from contract.options import InfluxOptions, option
from contract.rules import CARE_K_DEFAULT, CARE_K_MIN
from contract.settings import ConfigError

__all__ = ["ApiOptions"]


class ApiOptions(InfluxOptions, AlertsStoreOptions):
    """Options of the KPI API; :meth:`api_config` and :meth:`kpi_config` build its configs."""

    host: str = option("127.0.0.1", env="MACHI_API_HOST", help="bind address")
    port: int = option(8000, env="MACHI_API_PORT", ge=1, le=65535, help="port")
    keys: SecretStr = option(
        SecretStr(""),
        env="MACHI_API_KEYS",
        help="API keys, 'key:scope,key:scope' (scopes public, care, operator)",
        secret=True,
        cli=False,
    )
    keys_file: Path | None = option(
        None, env="MACHI_API_KEYS_FILE", help="file of 'key:scope' lines"
    )
    anonymous: bool = option(
        False, env="MACHI_API_ANONYMOUS", help="serve public aggregates without a key"
    )
    audit_log: Path = option(
        Path(".machi/audit/api-audit.jsonl"),
        env="MACHI_API_AUDIT_LOG",
        help="care-access audit log (JSONL)",
    )
    cache_ttl: float = option(
        10.0, env="MACHI_API_CACHE_TTL", ge=0, le=3600, help="seconds to cache KPI answers"
    )
    refresh: float = option(
        30.0,
        env="MACHI_API_REFRESH_S",
        ge=0,
        le=3600,
        help="recompute the default (last 24 h) answers every N s, 0 = off",
    )
    rollups: bool = option(
        True,
        env="MACHI_API_ROLLUPS",
        help="create the green rollup CQs at start-up (off: KPIs read raw points)",
    )
    grid_emission_factor: float | None = option(
        None,
        env="MACHI_GRID_EMISSION_FACTOR",
        ge=0,
        lt=0.01,
        help="grid CO2 emission factor in t-CO2/kWh (not kg); overrides --grid-area",
    )
    grid_area: str = option(
        emission.DEFAULT_AREA,
        env="MACHI_GRID_AREA",
        help="grid area whose listed factor applies (contract/emission.py, docs/kpis.md)",
    )
    grid_fiscal_year: int | None = option(
        None,
        env="MACHI_GRID_FISCAL_YEAR",
        ge=2000,
        le=2100,
        help="fiscal year of the listed factor (default: the newest listed)",
    )
    care_k: int = option(
        CARE_K_DEFAULT,
        env="MACHI_CARE_K",
        ge=CARE_K_MIN,
        help="care privacy threshold: residents behind every care figure",
    )
    online_window_s: int = option(
        300,
        env="MACHI_ONLINE_WINDOW_S",
        ge=10,
        le=86400,
        help="a device seen within this many seconds counts as online",
    )

    def api_config(self) -> ApiConfig:
        return ApiConfig(
            host=self.host,
            port=self.port,
            keys=self.keys.get_secret_value(),
            keys_file=str(self.keys_file) if self.keys_file else None,
            anonymous=self.anonymous,
            cache_ttl_s=self.cache_ttl,
            refresh_s=self.refresh,
            audit_log=self.audit_log,
        )

    def kpi_config(self) -> KpiConfig:
        try:
            return KpiConfig(
                emission_factor_t_per_kwh=(
                    self.grid_emission_factor
                    if self.grid_emission_factor is not None
                    else emission_factor(self.grid_area, self.grid_fiscal_year)
                ),
                care_k=self.care_k,
                online_window_s=self.online_window_s,
            )
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None
