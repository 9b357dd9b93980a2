"""The page's words in Japanese and English: one table, looked up by key.

KPI labels and plain-language definitions also feed the open-data dictionary, so the
page and the data dictionary cannot say different things about one column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CATEGORIES",
    "KPIS",
    "LANGS",
    "THEMES_PUBLIC",
    "KpiText",
    "kpi_definition",
    "kpi_label",
    "t",
    "theme_kpis",
    "unit",
]

LANGS: Final = ("ja", "en")

#: Themes residents see (the platform theme is an operators' concern).
THEMES_PUBLIC: Final = ("green", "care", "transit")


@dataclass(frozen=True)
class KpiText:
    """A published KPI: its labels and plain definitions in both languages."""

    theme: str
    id: str
    unit: str
    ja: str
    en: str
    def_ja: str
    def_en: str
    headline: bool = False  # shown as a figure card (the rest are in the tables)
    chart: bool = False  # drawn as the theme's daily trend chart


# fmt: off
KPIS: Final[tuple[KpiText, ...]] = (
    KpiText(
        "green", "energy_consumption_kwh", "kWh", "電力使用量", "Electricity used",
        "スマートメーターが記録した、電力網から買った電力量の合計です。",
        "Electricity drawn from the grid, summed over the city's smart meters.",
        headline=True, chart=True,
    ),
    KpiText(
        "green", "co2_emissions_t", "t-CO2", "CO2排出量", "CO2 emissions",
        "電力使用量に電力会社の排出係数を掛けた推計値です。",
        "Electricity used times the power company's emission factor (an estimate).",
        headline=True,
    ),
    KpiText(
        "green", "pv_export_kwh", "kWh", "太陽光の売電量", "Solar power exported",
        "屋根の太陽光パネルなどから電力網に送った電力量の合計です。",
        "Electricity sent to the grid, mostly from rooftop solar panels.",
        headline=True,
    ),
    KpiText(
        "green", "peak_demand_kw", "kW", "最大需要電力", "Peak demand",
        "30分ごとの電力使用量のうち最も大きい値を、平均電力（kW）に直したものです。",
        "The largest 30-minute electricity use, as average power in kW.",
    ),
    KpiText(
        "green", "meters_reporting_pct", "%", "データ送信中のメーター", "Meters reporting",
        "期間中に1回以上データを送ったメーターの割合です。",
        "Share of the smart meters that sent at least one reading in the period.",
        headline=True,
    ),
    KpiText(
        "care", "residents_monitored", "人", "見守り中の高齢者", "Residents cared for",
        "期間中に見守り端末からデータが届いた人数です。10人未満の地区は表示しません。",
        "Residents whose care wearable sent data in the period. Districts with fewer "
        "than 10 are not shown.",
        headline=True, chart=True,
    ),
    KpiText(
        "care", "alerts_fall", "件", "転倒の通知", "Fall alerts",
        "転倒を検知して通知した件数です。",
        "Times a fall was detected and carers were alerted.",
        headline=True,
    ),
    KpiText(
        "care", "alerts_hr_high", "件", "心拍数が高い通知", "High heart-rate alerts",
        "心拍数が高い状態が続いて通知した件数です。",
        "Times a high heart rate lasted long enough to alert carers.",
    ),
    KpiText(
        "care", "alerts_hr_low", "件", "心拍数が低い通知", "Low heart-rate alerts",
        "心拍数が低い状態が続いて通知した件数です。",
        "Times a low heart rate lasted long enough to alert carers.",
    ),
    KpiText(
        "care", "alerts_spo2_low", "件", "血中酸素が低い通知", "Low blood-oxygen alerts",
        "血中酸素濃度が低い状態が続いて通知した件数です。",
        "Times low blood oxygen lasted long enough to alert carers.",
    ),
    KpiText(
        "care", "wearables_reporting_pct", "%", "データ送信中の端末", "Wearables reporting",
        "期間中にデータを送った見守り端末の割合です。",
        "Share of the care wearables that sent data in the period.",
        headline=True,
    ),
    KpiText(
        "transit", "on_time_performance_pct", "%", "定時運行率", "Buses on time",
        "停留所に1分早着から5分遅れまでの間に着いた割合です。",
        "Share of stop arrivals from 1 minute early to 5 minutes late.",
        headline=True, chart=True,
    ),
    KpiText(
        "transit", "avg_delay_s", "秒", "平均遅れ", "Average delay",
        "停留所への到着の平均の遅れです（マイナスは早着）。",
        "Average delay of arrivals at stops (negative means early).",
        headline=True,
    ),
    KpiText(
        "transit", "active_vehicles", "台", "運行したバス", "Buses in service",
        "期間中に位置情報を送ったバスの台数です。",
        "Buses that sent their position in the period.",
        headline=True,
    ),
    KpiText(
        "transit", "avg_speed_kmh", "km/h", "平均速度", "Average speed",
        "バスが送った速度の平均です（停車中も含みます）。",
        "Average speed the buses reported, stops included.",
    ),
    KpiText(
        "transit", "headway_cv", "", "運行間隔のばらつき", "Headway irregularity",
        "停留所ごとのバスの間隔のばらつき（標準偏差÷平均）。0に近いほど等間隔です。",
        "How uneven the gaps between buses are (stddev / mean); 0 means evenly spaced.",
    ),
)
# fmt: on

_UNITS_EN: Final = {"人": "residents", "件": "alerts", "秒": "s", "台": "buses"}

_T: Final[dict[str, tuple[str, str]]] = {
    "skip": ("本文へ移動", "Skip to content"),
    "lang_switch": ("English", "日本語"),
    "intro": (
        "まちのスマートシティ事業の進み具合を、センサーのデータから毎日お知らせします。"
        "個人が分かる数字は載せていません。",
        "How the city's smart-city programme is doing, from its sensors, every day. "
        "No figure here can identify a person.",
    ),
    "city": ("市全体", "Whole city"),
    "districts": ("地区", "Districts"),
    "theme_green": ("環境・エネルギー", "Green city (energy)"),
    "theme_care": ("医療・見守り", "Healthcare and elderly care"),
    "theme_transit": ("公共交通", "Public transport"),
    "updated": ("最終更新", "Last updated"),
    "period": ("期間", "Period"),
    "day": ("日", "Day"),
    "week": ("週（月曜から）", "Week (from Monday)"),
    "so_far": ("（集計中）", "(so far)"),
    "no_data": ("データなし", "no data"),
    "suppressed": ("非公表", "not shown"),
    "suppressed_note": (
        "「非公表」は、10人未満の地区や、他の数字から逆算できてしまう数字です。",
        "\u201cNot shown\u201d marks figures over fewer than 10 residents, and figures that "
        "would let someone work one out from the others.",
    ),
    "care_days_note": (
        "見守りの数字は、1日が終わってから公表します。",
        "Care figures are published once the day is over.",
    ),
    "daily_trend": ("日ごとの推移", "Day by day"),
    "weekly_trend": ("週ごとの推移", "Week by week"),
    "chart_alt": (
        "グラフの数値は下の表にもあります。",
        "The chart's values are in the table below.",
    ),
    "table_daily": ("日ごとの数字（表）", "Daily figures (table)"),
    "targets": ("目標への進み具合", "Progress toward the targets"),
    "target_of": ("目標", "target"),
    "baseline": ("基準", "baseline"),
    "progress_text": ("目標までの達成度", "of the way to the target"),
    "no_targets": ("目標は設定されていません。", "No targets are configured."),
    "definition": ("定義", "Definition"),
    "feedback": ("ご意見・ご質問", "Your comments"),
    "feedback_intro": (
        "このテーマについてのご意見をお寄せください。市の担当者が確認してから掲載し、"
        "回答します。お名前や連絡先は不要です。個人情報は書かないでください。",
        "Tell us what you think about this theme. City staff read every comment before "
        "it is published, and reply. No name or contact details are needed; please do "
        "not write personal information.",
    ),
    "feedback_text": ("ご意見（1〜1000文字）", "Your comment (1-1000 characters)"),
    "feedback_category": ("分類（任意）", "Category (optional)"),
    "feedback_district": ("地区（任意）", "District (optional)"),
    "feedback_send": ("送信する", "Send"),
    "feedback_website": ("この欄は空のままにしてください", "Leave this field empty"),
    "feedback_none": ("掲載されたご意見はまだありません。", "No comments have been published yet."),
    "feedback_reply": ("市からの回答", "The city's reply"),
    "feedback_thanks": (
        "ありがとうございました。担当者が確認してから掲載します。",
        "Thank you. Your comment will appear once city staff have read it.",
    ),
    "feedback_error": ("送信できませんでした", "Your comment was not sent"),
    "cat_none": ("選択しない", "None"),
    "cat_question": ("質問", "Question"),
    "cat_idea": ("提案", "Idea"),
    "cat_problem": ("不具合の報告", "Problem"),
    "cat_praise": ("感想", "Praise"),
    "open_data": ("オープンデータ", "Open data"),
    "open_data_intro": (
        "このページの数字はすべて、CC BY 4.0 でダウンロードできます。",
        "Every figure on this page can be downloaded under CC BY 4.0.",
    ),
    "catalog": ("データカタログ（DCAT）", "Data catalogue (DCAT)"),
    "dictionary": ("データ項目の説明", "Data dictionary"),
    "daily_csv": ("日ごと", "daily"),
    "weekly_csv": ("週ごと", "weekly"),
    "licence": ("ライセンス", "Licence"),
    "preparing": (
        "数字を集計しています。1分ほどしてから再読み込みしてください。",
        "The figures are being computed. Please reload in a minute.",
    ),
    "not_found": ("ページが見つかりません", "Page not found"),
    "back_home": ("トップページへ", "Back to the main page"),
    "district_page": ("地区のページ", "District page"),
    "value": ("値", "Value"),
    "kpi": ("項目", "Figure"),
}

#: Feedback categories a resident may choose (stored by key).
CATEGORIES: Final = ("question", "idea", "problem", "praise")


def t(lang: str, key: str) -> str:
    """The string ``key`` in ``lang`` (``ja`` or ``en``); a missing key is a bug."""
    ja, en = _T[key]
    return ja if lang == "ja" else en


def unit(kpi: KpiText, lang: str) -> str:
    return kpi.unit if lang == "ja" else _UNITS_EN.get(kpi.unit, kpi.unit)


def kpi_label(kpi: KpiText, lang: str) -> str:
    return kpi.ja if lang == "ja" else kpi.en


def kpi_definition(kpi: KpiText, lang: str) -> str:
    return kpi.def_ja if lang == "ja" else kpi.def_en


def theme_kpis(theme: str) -> list[KpiText]:
    return [k for k in KPIS if k.theme == theme]
