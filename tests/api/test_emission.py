"""Grid emission factors: a table per fiscal year and area with sources; the KPI
default is the seed city's grid (TEPCO's area) and the demo city lies in it."""

from __future__ import annotations

import pytest

from api.config import KpiConfig
from api.options import ApiOptions
from contract import emission
from contract.options import load_options
from contract.settings import ConfigError
from machi.simulate import CITY_CENTER


def _factor() -> float:
    return load_options(ApiOptions).kpi_config().emission_factor_t_per_kwh


def test_default_is_tepco_area_with_a_source(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MACHI_GRID_EMISSION_FACTOR", "MACHI_GRID_AREA", "MACHI_GRID_FISCAL_YEAR"):
        monkeypatch.delenv(var, raising=False)
    tepco = emission.factor("tepco")
    assert tepco.area == "tepco" and "TEPCO Energy Partner" in tepco.retailer
    assert tepco.source.count("https://") == 1 and tepco.t_per_kwh == 0.000491
    assert KpiConfig().emission_factor_t_per_kwh == tepco.t_per_kwh
    assert _factor() == tepco.t_per_kwh


def test_every_factor_has_a_source_and_a_plausible_value() -> None:
    assert {(f.area, f.fiscal_year) for f in emission.FACTORS} >= {("tepco", 2015)}
    for f in emission.FACTORS:
        assert "https://" in f.source and f.menu
        assert 0.0001 < f.t_per_kwh < 0.001  # t-CO2/kWh, not kg


def test_area_and_year_selection_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACHI_GRID_AREA", "shikoku")
    monkeypatch.setenv("MACHI_GRID_FISCAL_YEAR", "2021")
    assert _factor() == 0.000532
    monkeypatch.delenv("MACHI_GRID_FISCAL_YEAR")
    assert _factor() == 0.000464  # newest listed
    monkeypatch.setenv("MACHI_GRID_EMISSION_FACTOR", "0.000450")
    assert _factor() == 0.00045  # override wins
    monkeypatch.delenv("MACHI_GRID_EMISSION_FACTOR")
    monkeypatch.setenv("MACHI_GRID_AREA", "kyushu")
    with pytest.raises(ConfigError, match="MACHI_GRID_AREA.*kyushu.*MACHI_GRID_EMISSION_FACTOR"):
        load_options(ApiOptions).kpi_config()


def test_demo_city_lies_in_tepco_service_area() -> None:
    # TEPCO Power Grid serves Kanto, Yamanashi and Shizuoka east of the Fuji river
    # (about 138.6 E); Chubu's area begins west of it. A coarse box is enough here.
    lat, lon = CITY_CENTER
    assert 34.9 <= lat <= 37.2 and 138.6 <= lon <= 140.9, CITY_CENTER
