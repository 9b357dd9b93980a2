"""The residents' page: a view model from a snapshot and the feedback store, rendered
with Jinja2 (autoescape on for every template: residents' text is always escaped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from portal.aggregates import TZ, Cell, Period, Snapshot
from portal.charts import bar_chart
from portal.feedback import Item
from portal.strings import (
    CATEGORIES,
    THEMES_PUBLIC,
    KpiText,
    kpi_definition,
    kpi_label,
    t,
    theme_kpis,
    unit,
)
from portal.targets import Targets

__all__ = ["FormState", "Renderer", "base_path", "fmt"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def base_path(lang: str) -> str:
    return "" if lang == "ja" else "/en"


def page_path(lang: str, site: str | None) -> str:
    return base_path(lang) + (f"/districts/{site}/" if site else "/")


def fmt(v: float | None) -> str:
    """A figure as residents read it: thousands separators, sensible decimals."""
    if v is None:
        return ""
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10 or float(v).is_integer():
        return f"{v:,.1f}".removesuffix(".0")
    return f"{v:,.3g}" if a >= 0.01 or a == 0 else f"{v:.2e}"


@dataclass
class FormState:
    """What the feedback form shows after a submission: thanks, or an error and the
    text the resident wrote (escaped like everything else)."""

    theme: str
    sent: bool = False
    error: str | None = None
    text: str = ""
    category: str = ""
    district: str = ""


@dataclass
class Figure:
    kpi: KpiText
    label: str
    value: float | None
    shown: str
    unit: str
    definition: str
    suppressed: bool
    key: str


@dataclass
class ThemeView:
    id: str
    name: str
    period_label: str
    updated: str
    figures: list[Figure]
    targets: list[dict[str, Any]]
    chart: Markup | None
    daily: dict[str, Any]
    weekly: dict[str, Any]
    notes: list[str]
    feedback: list[Item]
    token: str
    form: FormState | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Renderer:
    def __init__(self, title: str, targets: Targets) -> None:
        self.title = title
        self.targets = targets
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template, whatever its name
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["fmt"] = fmt

    # -- helpers --------------------------------------------------------------------

    def _local(self, d: datetime, lang: str) -> str:
        x = d.astimezone(TZ)
        return (
            x.strftime("%Y年%m月%d日 %H:%M") if lang == "ja" else x.strftime("%Y-%m-%d %H:%M JST")
        )

    def _period_label(self, p: Period, lang: str, now: datetime) -> str:
        d = p.first
        text = f"{d.year}年{d.month}月{d.day}日" if lang == "ja" else d.isoformat()
        if p.kind == "week":
            text = f"{text}の週" if lang == "ja" else f"week of {text}"
        if not p.complete(now):
            text += " " + t(lang, "so_far")
        return text

    def _table(
        self, snap: Snapshot, theme: str, kind: str, site: str | None, lang: str
    ) -> dict[str, Any]:
        kpis = theme_kpis(theme)
        rows = []
        for p in reversed(snap.periods(kind)):
            c = snap.cell(theme, p, site)
            if c is None:
                continue
            rows.append(
                {
                    "label": self._period_label(p, lang, snap.made_at),
                    "cells": [self._cell_text(c, k, lang) for k in kpis],
                }
            )
        return {
            "headers": [
                f"{kpi_label(k, lang)}" + (f" ({unit(k, lang)})" if k.unit else "") for k in kpis
            ],
            "rows": rows,
        }

    def _cell_text(self, c: Cell, k: KpiText, lang: str) -> str:
        if c.pending or c.suppressed:
            return t(lang, "suppressed") if c.suppressed and not c.pending else "—"
        v = c.value(k.id)
        return t(lang, "no_data") if v is None else fmt(v)

    # -- the page -------------------------------------------------------------------

    def page(
        self,
        snap: Snapshot,
        lang: str,
        site: str | None,
        feedback: dict[str, list[Item]],
        tokens: dict[str, str],
        form: FormState | None = None,
    ) -> str:
        other = "en" if lang == "ja" else "ja"
        themes = [
            self._theme(snap, th, lang, site, feedback.get(th, []), tokens[th], form)
            for th in THEMES_PUBLIC
        ]
        districts = [
            {"id": s, "name": self.targets.district_name(s, lang), "url": page_path(lang, s)}
            for s in snap.sites
        ]
        return self.env.get_template("page.html").render(
            t=lambda key: t(lang, key),
            lang=lang,
            other_lang=other,
            other_label=t(lang, "lang_switch"),
            other_url=page_path(other, site),
            home=page_path(lang, None),
            title=self.title,
            site=site,
            site_name=self.targets.district_name(site, lang) if site else t(lang, "city"),
            districts=districts,
            updated=self._local(snap.made_at, lang),
            updated_iso=snap.made_at.isoformat(),
            themes=themes,
            categories=[(c, t(lang, f"cat_{c}")) for c in CATEGORIES],
        )

    def _theme(
        self,
        snap: Snapshot,
        theme: str,
        lang: str,
        site: str | None,
        items: list[Item],
        token: str,
        form: FormState | None,
    ) -> ThemeView:
        latest = snap.latest(theme, site)
        figures = []
        for k in theme_kpis(theme):
            if not k.headline:
                continue
            value = latest[1].value(k.id) if latest else None
            suppressed = latest is None and theme == "care"
            figures.append(
                Figure(
                    k,
                    kpi_label(k, lang),
                    value,
                    fmt(value) if value is not None else t(lang, "no_data"),
                    unit(k, lang),
                    kpi_definition(k, lang),
                    suppressed,
                    f"{theme}.{k.id}",
                )
            )
        targets = []
        # Targets compare whole days (a day so far is not comparable with a baseline day),
        # falling back to today only when no finished day has figures yet.
        final = snap.latest(theme, site, complete=True) or latest
        for tg in self.targets.targets:
            if tg.theme != theme:
                continue
            value = final[1].value(tg.kpi) if final else None
            prog = tg.progress(value)
            targets.append(
                {
                    "label": tg.label(lang),
                    "value": value,
                    "target": tg.target,
                    "baseline": tg.baseline,
                    "baseline_year": tg.baseline_year,
                    "target_year": tg.target_year,
                    "pct": None if prog is None else round(prog.share * 100),
                    "key": f"{theme}.{tg.kpi}",
                    "period": self._period_label(final[0], lang, snap.made_at) if final else "",
                }
            )
        chart_kpi = next(k for k in theme_kpis(theme) if k.chart)
        labels = [p.label for p in snap.days]
        values = []
        for p in snap.days:
            c = snap.cell(theme, p, site)
            values.append(None if c is None else c.value(chart_kpi.id))
        chart = None
        if any(v is not None for v in values):
            chart = bar_chart(
                f"chart-{theme}",
                f"{kpi_label(chart_kpi, lang)}: {t(lang, 'daily_trend')}",
                t(lang, "chart_alt"),
                labels,
                values,
                unit(chart_kpi, lang),
            )
        notes = []
        if theme == "care":
            notes = [t(lang, "suppressed_note"), t(lang, "care_days_note")]
        return ThemeView(
            id=theme,
            name=t(lang, f"theme_{theme}"),
            period_label=self._period_label(latest[0], lang, snap.made_at) if latest else "",
            updated=self._local(latest[1].computed_at if latest else snap.made_at, lang),
            figures=figures,
            targets=targets,
            chart=chart,
            daily=self._table(snap, theme, "day", site, lang),
            weekly=self._table(snap, theme, "week", site, lang),
            notes=notes,
            feedback=items,
            token=token,
            form=form if form is not None and form.theme == theme else None,
        )

    def simple(self, lang: str, heading: str, message: str, status_home: bool = True) -> str:
        return self.env.get_template("message.html").render(
            t=lambda key: t(lang, key),
            lang=lang,
            title=self.title,
            heading=heading,
            message=message,
            home=page_path(lang, None),
        )
