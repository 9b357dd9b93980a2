"""Checked access to one ``[[sources]]`` table of the edge TOML config.

Every error names the source and the key, so the operator can fix the file.
"""

from __future__ import annotations

from typing import Any

from contract.ids import check_id
from contract.settings import ConfigError


class SourceConfig:
    """Typed getters over a ``[[sources]]`` dict that raise :class:`ConfigError`."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        if not isinstance(cfg, dict):
            raise ConfigError(f"a [[sources]] entry must be a table, not {type(cfg).__name__}")
        self.raw = cfg
        self.type = str(cfg.get("type", "?"))
        self.where = f"[[sources]] type={self.type!r} device_id={cfg.get('device_id', '?')!r}"

    def _missing(self, key: str, hint: str) -> ConfigError:
        return ConfigError(f"{self.where}: key {key!r} is missing; {hint}")

    def str_(self, key: str, default: str | None = None, hint: str = "") -> str:
        value = self.raw.get(key, default)
        if value is None:
            raise self._missing(key, hint or f'add {key} = "..."')
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.where}: {key} must be a non-empty string, got {value!r}")
        return value

    def id_(self, key: str, default: str | None = None) -> str:
        value = self.str_(key, default, hint=f'add {key} = "..." (letters, digits, _ . -)')
        try:
            return check_id(value, key)
        except ValueError as exc:
            raise ConfigError(f"{self.where}: {exc}") from None

    def int_(self, key: str, default: int | None = None, lo: int = 0, hi: int = 2**31) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise self._missing(key, f"add {key} = <whole number>")
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(
                f"{self.where}: {key} must be a whole number in [{lo}, {hi}], got {value!r}"
            )
        return value

    def float_(
        self, key: str, default: float | None = None, lo: float = 0.0, hi: float = 1e6
    ) -> float:
        value = self.raw.get(key, default)
        if value is None:
            raise self._missing(key, f"add {key} = <number>")
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(
                f"{self.where}: {key} must be a number in [{lo}, {hi}], got {value!r}"
            )
        return float(value)

    def table(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key)
        if value is None:
            raise self._missing(key, f"add {key} = {{ ... }}")
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where}: {key} must be a table, got {value!r}")
        return value

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")
