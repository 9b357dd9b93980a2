"""Open data: the published aggregates as CSV and JSON, the data dictionary, the DCAT
catalog (JSON-LD) that CKAN-style portals harvest.

Column keys are English; the dictionary gives each a Japanese and an English label, its
unit and its definition (the same words the page uses, from :mod:`portal.strings`).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any, Final

from portal.aggregates import Snapshot
from portal.strings import KPIS, THEMES_PUBLIC, t, theme_kpis

__all__ = ["LICENSE", "catalog", "dictionary_rows", "table_csv", "table_json"]

LICENSE: Final = "https://creativecommons.org/licenses/by/4.0/"
IANA: Final = "http://www.iana.org/assignments/media-types/"
KINDS: Final = ("daily", "weekly")
_KIND_PERIOD: Final = {"daily": "day", "weekly": "week"}

#: The columns every table starts with: key, label ja, label en, type, definition en.
COMMON: Final = (
    ("period", "集計単位", "Period", "string", "day or week (local time, Asia/Tokyo)"),
    ("date", "日付", "Date", "date", "local date of the first day of the period"),
    ("start", "開始時刻", "Start", "datetime", "start of the period, UTC (inclusive)"),
    ("end", "終了時刻", "End", "datetime", "end of the period, UTC (exclusive)"),
    ("district", "地区", "District", "string", "district id; empty for the whole city"),
    ("complete", "確定", "Complete", "boolean", "the period is over (figures are final)"),
    (
        "suppressed",
        "非公表",
        "Suppressed",
        "boolean",
        "care: the figures are withheld (under 10 residents, derivable, or the period "
        "is not over); the KPI columns are then empty",
    ),
)
TAIL: Final = (
    ("computed_at", "集計時刻", "Computed at", "datetime", "when the figures were computed, UTC"),
)


def columns(theme: str) -> list[str]:
    return [c[0] for c in COMMON] + [k.id for k in theme_kpis(theme)] + [c[0] for c in TAIL]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def table_csv(snap: Snapshot, theme: str, kind: str) -> bytes:
    """UTF-8 CSV (no BOM; RFC 4180 line ends) of one theme's daily or weekly table."""
    out = io.StringIO()
    cols = columns(theme)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(cols)
    for row in snap.rows(theme, _KIND_PERIOD[kind]):
        w.writerow([_cell(row[c]) for c in cols])
    return out.getvalue().encode("utf-8")


def table_json(snap: Snapshot, theme: str, kind: str) -> dict[str, Any]:
    return {
        "theme": theme,
        "period": _KIND_PERIOD[kind],
        "license": LICENSE,
        "modified": _iso(snap.made_at),
        "columns": columns(theme),
        "rows": snap.rows(theme, _KIND_PERIOD[kind]),
    }


def dictionary_rows() -> list[dict[str, str]]:
    """One row per column of every table: where, key, labels, unit, type, definitions."""
    rows = []
    for key, ja, en, typ, definition in COMMON + TAIL:
        rows.append(
            {
                "dataset": "*",
                "key": key,
                "label_ja": ja,
                "label_en": en,
                "unit": "",
                "type": typ,
                "definition_ja": "",
                "definition_en": definition,
            }
        )
    for k in KPIS:
        rows.append(
            {
                "dataset": k.theme,
                "key": k.id,
                "label_ja": k.ja,
                "label_en": k.en,
                "unit": k.unit,
                "type": "number",
                "definition_ja": k.def_ja,
                "definition_en": k.def_en,
            }
        )
    return rows


def dictionary_csv() -> bytes:
    out = io.StringIO()
    rows = dictionary_rows()
    w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def _iso(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lang(ja: str, en: str) -> list[dict[str, str]]:
    return [{"@value": ja, "@language": "ja"}, {"@value": en, "@language": "en"}]


def _dt(d: datetime) -> dict[str, str]:
    return {"@value": _iso(d), "@type": "xsd:dateTime"}


def _distribution(url: str, title_ja: str, title_en: str, fmt: str, media: str) -> dict:
    return {
        "@id": url + "#distribution",
        "@type": "dcat:Distribution",
        "dct:title": _lang(title_ja, title_en),
        "dcat:downloadURL": {"@id": url},
        "dcat:accessURL": {"@id": url},
        "dcat:mediaType": {"@id": IANA + media},
        "dct:format": fmt,
        "dct:license": {"@id": LICENSE},
    }


def catalog(snap: Snapshot, base: str, title: str) -> dict[str, Any]:
    """The DCAT catalog: a dataset per theme (daily and weekly, CSV and JSON, plus the
    data dictionary) and the GTFS-RT vehicle positions feed."""
    base = base.rstrip("/")
    od = f"{base}/open-data"
    publisher = {
        "@id": f"{base}/#publisher",
        "@type": "foaf:Organization",
        "foaf:name": _lang("市 スマートシティ推進課", "City smart-city office"),
        "foaf:homepage": {"@id": f"{base}/"},
    }
    datasets = []
    for theme in THEMES_PUBLIC:
        dists = []
        for kind in KINDS:
            label_ja, label_en = t("ja", f"{kind}_csv"), t("en", f"{kind}_csv")
            for ext, fmt, media in (
                ("csv", "CSV", "text/csv"),
                ("json", "JSON", "application/json"),
            ):
                dists.append(
                    _distribution(
                        f"{od}/{theme}-{kind}.{ext}",
                        f"{t('ja', 'theme_' + theme)}（{label_ja}、{fmt}）",
                        f"{t('en', 'theme_' + theme)} ({label_en}, {fmt})",
                        fmt,
                        media,
                    )
                )
        dists.append(
            _distribution(
                f"{od}/dictionary.csv",
                "データ項目の説明（CSV）",
                "Data dictionary (CSV)",
                "CSV",
                "text/csv",
            )
        )
        kpis = ", ".join(k.en for k in theme_kpis(theme))
        kpis_ja = "、".join(k.ja for k in theme_kpis(theme))
        datasets.append(
            {
                "@id": f"{od}/{theme}",
                "@type": "dcat:Dataset",
                "dct:identifier": f"machi-{theme}-aggregates",
                "dct:title": _lang(
                    f"{t('ja', 'theme_' + theme)}の集計（地区別・日別・週別）",
                    f"{t('en', 'theme_' + theme)}: aggregates by district, day and week",
                ),
                "dct:description": _lang(
                    f"市全体と地区ごとの日別・週別の集計値：{kpis_ja}。",
                    f"Daily and weekly figures for the whole city and each district: {kpis}.",
                ),
                "dcat:keyword": [theme, "smart city", "スマートシティ", "open data"],
                "dct:publisher": publisher,
                "dct:license": {"@id": LICENSE},
                "dct:modified": _dt(snap.made_at),
                "dct:accrualPeriodicity": {"@id": "http://purl.org/cc/freq/daily"},
                "dct:language": [
                    {"@id": "http://id.loc.gov/vocabulary/iso639-1/ja"},
                    {"@id": "http://id.loc.gov/vocabulary/iso639-1/en"},
                ],
                "dcat:landingPage": {"@id": f"{base}/#{theme}"},
                "dcat:distribution": dists,
            }
        )
    feed = f"{base}/v1/transit/vehicle-positions"
    datasets.append(
        {
            "@id": f"{od}/gtfs-rt-vehicle-positions",
            "@type": "dcat:Dataset",
            "dct:identifier": "machi-gtfs-rt-vehicle-positions",
            "dct:title": _lang(
                "バスの現在位置（GTFSリアルタイム）", "Bus positions (GTFS Realtime)"
            ),
            "dct:description": _lang(
                "市内バスの現在位置。GTFS Realtime の VehiclePositions 形式（API キーが必要）。",
                "Where the city's buses are now, as a GTFS Realtime VehiclePositions feed "
                "(needs a public API key).",
            ),
            "dcat:keyword": ["transit", "GTFS-RT", "bus", "バス"],
            "dct:publisher": publisher,
            "dct:license": {"@id": LICENSE},
            "dct:modified": _dt(snap.made_at),
            "dct:accrualPeriodicity": {"@id": "http://purl.org/cc/freq/continuous"},
            "dcat:landingPage": {"@id": f"{base}/#transit"},
            "dcat:distribution": [
                _distribution(
                    feed,
                    "バスの現在位置（GTFS-RT）",
                    "Bus positions (GTFS-RT protobuf)",
                    "GTFS-RT",
                    "application/x-protobuf",
                )
            ],
        }
    )
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
        },
        "@id": f"{od}/catalog.jsonld",
        "@type": "dcat:Catalog",
        "dct:title": _lang(f"{title} オープンデータ", f"{title} open data"),
        "dct:description": _lang(
            "スマートシティ事業の集計データ（個人が分からないよう処理済み）。",
            "Aggregates of the city's smart-city programme, with no figure that identifies "
            "a person.",
        ),
        "dct:publisher": publisher,
        "dct:license": {"@id": LICENSE},
        "dct:modified": _dt(snap.made_at),
        "foaf:homepage": {"@id": f"{base}/"},
        "dcat:dataset": datasets,
    }
