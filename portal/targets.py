"""The city's targets and district names, from a TOML file (``MACHI_PORTAL_TARGETS``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from contract.ids import check_id
from contract.settings import ConfigError

__all__ = ["DistrictName", "Progress", "Target", "Targets", "load_targets"]


class Target(BaseModel):
    """One goal: a published KPI, the level it starts from and the level aimed at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    theme: Literal["green", "care", "transit"]
    kpi: str
    direction: Literal["up", "down"]
    period: Literal["day"] = "day"
    target: float
    baseline: float | None = None
    baseline_year: int | None = None
    target_year: int | None = None
    label_ja: str
    label_en: str

    def progress(self, value: float | None) -> Progress | None:
        """How far ``value`` has come from the baseline to the target (0..1 clamped)."""
        if value is None:
            return None
        start = self.baseline if self.baseline is not None else 0.0
        span = self.target - start
        if span == 0:
            return Progress(value=value, share=1.0 if value == self.target else 0.0)
        share = (value - start) / span
        return Progress(value=value, share=min(1.0, max(0.0, share)))

    def label(self, lang: str) -> str:
        return self.label_ja if lang == "ja" else self.label_en


class Progress(BaseModel):
    value: float
    share: float  # 0..1 of the way from the baseline to the target


class DistrictName(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ja: str
    en: str


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[Target] = []
    districts: dict[str, DistrictName] = {}

    def district_name(self, site: str, lang: str) -> str:
        d = self.districts.get(site)
        return site if d is None else (d.ja if lang == "ja" else d.en)


def load_targets(path: Path | None) -> Targets:
    """The targets file, validated; no file gives no targets. Errors name the file."""
    if path is None:
        return Targets()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        targets = Targets.model_validate(doc)
        for site in targets.districts:
            check_id(site, "district")
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = f"{where}: {err['msg']}"
        else:
            msg = str(exc)
        raise ConfigError(f"MACHI_PORTAL_TARGETS={str(path)!r}: {msg}") from None
    return targets
