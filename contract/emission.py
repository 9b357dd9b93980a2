"""Grid CO2 emission factors per fiscal year and grid area, each with its source.

Japan's 温対法 (Act on Promotion of Global Warming Countermeasures) reporting scheme
has retailers report a *basic* and an *adjusted* (調整後) emission factor per fiscal year
(April..March); MoE and METI publish them (電気事業者別排出係数). The adjusted factor of
the retailer's standard (residual) menu is the one a city's Scope 2 report uses.

Only figures whose source we could read are listed; ``verified`` says whether that
source is the government's published list (True) or the retailer's own report before
the government's confirmation (False). The KPI API takes its default from
:data:`DEFAULT_AREA` (the seed city's grid) and lets ``MACHI_GRID_EMISSION_FACTOR``
override it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmissionFactor:
    """One retailer's factor for one fiscal year, in t-CO2/kWh."""

    area: str  # grid area (一般送配電事業者の供給区域): tepco, chubu, shikoku, ...
    fiscal_year: int  # Japanese fiscal year: April of this year to March of the next
    retailer: str
    menu: str
    t_per_kwh: float
    source: str
    verified: bool  # True: as published by MoE/METI; False: the retailer's report

    @property
    def kg_per_kwh(self) -> float:
        return self.t_per_kwh * 1000


FACTORS: tuple[EmissionFactor, ...] = (
    EmissionFactor(
        "tepco",
        2015,
        "TEPCO Energy Partner (東京電力エナジーパートナー)",
        "whole company, adjusted (after FIT adjustment and Kyoto credits)",
        0.000491,
        "TEPCO Energy Partner press release 2016-08-01, 2015年度のCO2排出係数の報告について "
        "(https://www4.tepco.co.jp/ep/notice/pressrelease/2016/1314951_8661.html): "
        "0.500 kg-CO2/kWh before, 0.491 after the adjustments, as reported to METI/MoE",
        False,
    ),
    EmissionFactor(
        "shikoku",
        2021,
        "Shikoku Electric Power (四国電力, Yonden)",
        "menu C (residual), adjusted",
        0.000532,
        "Yonden 2023-06-01, as corrected by the government "
        "(https://www.yonden.co.jp/energy/environment/topics/2023_06_01.html)",
        True,
    ),
    EmissionFactor(
        "shikoku",
        2023,
        "Shikoku Electric Power (四国電力, Yonden)",
        "menu C (residual), adjusted",
        0.000464,
        "Yonden 2025-04-07, as published by the government "
        "(https://www.yonden.co.jp/energy/environment/topics/2025_04_07.html)",
        True,
    ),
)

#: The seed city is served by TEPCO's grid.
DEFAULT_AREA = "tepco"


def factor(area: str = DEFAULT_AREA, fiscal_year: int | None = None) -> EmissionFactor:
    """The factor for ``area`` in ``fiscal_year`` (None: the newest listed).

    Raises ValueError naming what is listed when there is none.
    """
    rows = [f for f in FACTORS if f.area == area]
    if fiscal_year is not None:
        rows = [f for f in rows if f.fiscal_year == fiscal_year]
    if not rows:
        listed = ", ".join(f"{f.area}/FY{f.fiscal_year}" for f in FACTORS)
        want = area if fiscal_year is None else f"{area}/FY{fiscal_year}"
        raise ValueError(
            f"no grid emission factor listed for {want}; listed: {listed}. Set "
            "MACHI_GRID_EMISSION_FACTOR (t-CO2/kWh) to your retailer's published factor"
        )
    return max(rows, key=lambda f: f.fiscal_year)


DEFAULT = factor()
