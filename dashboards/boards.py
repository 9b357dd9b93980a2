"""machi's dashboards: one per theme, a city overview, fleet health, and a restricted
per-resident care board that lives in its own folder.

Uids and panel ids are fixed so that re-deploying or re-exporting changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat as sb
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from contract.disclosure import RESIDENTS, TOTAL
from contract.rules import CARE_PUBLISHED
from dashboards import queries as q
from dashboards.panels import base, stat, table, tag_variable, timeseries, title

#: Why the shared care panels show what they show (descriptions of the boards).
CARE_RULE = (
    "Care figures are the API's published ones (the care publisher, api/care_publish.py): "
    'one value per day (00:00 JST) per district and for the city ("*"), after the same '
    "disclosure control as the public API: k residents, complementary suppression across "
    'districts and alert types, small counts as ranges ("0-9"), "-" where withheld. '
    "No panel reads raw care data."
)


@dataclass(frozen=True)
class Folder:
    uid: str
    title: str
    #: Folder on disk (under dashboards/json/) and in the provisioning file.
    path: str


CITY = Folder("machi-city", "machi 街 / City", "city")
RESTRICTED = Folder(
    "machi-care-restricted", "machi 見守り・個人（制限）/ Care residents (restricted)", "restricted"
)
FOLDERS = (CITY, RESTRICTED)


@dataclass(frozen=True)
class Board:
    uid: str
    folder: Folder
    make: Callable[[], db.Dashboard]

    def build(self) -> dm.Dashboard:
        dashboard = self.make().build()
        for i, panel in enumerate(dashboard.panels or [], start=1):
            panel.id_val = i  # stable ids: Grafana keys panel links and state on them
        return dashboard


def _add(d: db.Dashboard, *panels: cogbuilder.Builder[dm.Panel]) -> db.Dashboard:
    for p in panels:
        d.with_panel(p)
    return d


def _site(measurement: str | None = None) -> db.QueryVariable:
    return tag_variable("site", "地区 / Site", q.site_values(measurement))


# Headline stats: each stands on its theme's board and again on the overview.


def _energy_stats() -> list[sb.Panel]:
    return [
        stat(title("電力消費", "Energy consumption"), q.energy_total(), "kwatth"),
        stat(title("太陽光売電", "PV export"), q.energy_total("energy_export_kwh"), "kwatth"),
        stat(title("30分最大需要", "Peak 30-min demand"), q.peak_demand_30m(), "kwatt", calc="max"),
        stat(title("電力量計", "Meters reporting"), q.meters_reporting(), "short"),
    ]


def _care_stats(w: int = 6) -> list[sb.Panel]:
    """The city's residents and alerts of the newest published day (text: a number, a
    range or "-")."""
    return [
        stat(title(ja, en), q.care_newest(col), "none", text=True, w=w)
        for ja, en, col in (
            ("見守り対象者（市・最新日）", "Residents monitored (city, newest day)", RESIDENTS),
            ("アラート（市・最新日）", "Care alerts (city, newest day)", TOTAL),
        )
    ]


def _on_time_stat() -> sb.Panel:
    return stat(title("定時運行率", "On-time performance"), q.on_time_pct(None), "percent")


def _mean_delay_stat() -> sb.Panel:
    return stat(title("平均遅延", "Average delay"), q.mean_delay(by_route=False), "s")


def _active_vehicles_stat() -> sb.Panel:
    return stat(title("運行車両", "Active vehicles"), q.active_vehicles(), "short")


def _ingest_stats() -> list[sb.Panel]:
    """Agents online, ingest rejects and ingest lag."""
    return [
        stat(title("稼働中エージェント", "Agents online"), q.agents_online(), "short"),
        stat(title("取込拒否", "Ingest rejects"), q.rejects_total(), "short", no_value="0"),
        stat(title("取込遅延", "Ingest lag"), q.ingest_lag(), "s", calc="max"),
    ]


def overview() -> db.Dashboard:
    d = base(
        "machi-overview",
        title("街の概要", "City overview"),
        ["overview"],
        "Headline KPIs of every theme for the selected sites; the care stats are the "
        "city's newest published day. " + CARE_RULE,
    ).with_variable(_site())
    d.with_variable(
        tag_variable("route", "路線 / Route", q.route_values()).hide(dm.VariableHide.HIDE_VARIABLE)
    )
    return _add(
        d,
        *_energy_stats(),
        *_care_stats(),
        _on_time_stat(),
        _active_vehicles_stat(),
        *_ingest_stats(),
        _mean_delay_stat(),
    )


def green() -> db.Dashboard:
    d = base(
        "machi-green",
        title("環境・エネルギー", "Green: energy"),
        ["green", "energy"],
        "Smart-meter consumption (the API's 5-minute rollups of the cumulative import "
        "register: a meter reset keeps the new counter's increment, as the KPI API counts "
        "it; the newest 5-10 minutes appear once rolled up), PV export, peak 30-minute "
        "demand (counter-based) and net power.",
    ).with_variable(_site("energy_meter"))
    return _add(
        d,
        *_energy_stats(),
        timeseries(
            title("電力消費（地区別）", "Energy consumption by site"),
            q.energy_per_interval(),
            "kwatth",
            alias="$tag_site",
        ),
        timeseries(
            title("太陽光売電（地区別）", "PV export by site"),
            q.energy_per_interval("energy_export_kwh"),
            "kwatth",
            alias="$tag_site",
        ),
        timeseries(
            title("正味電力（地区別）", "Net power by site"),
            q.net_power_kw(),
            "kwatt",
            alias="$tag_site",
            w=24,
        ),
        table(
            title("地区別 消費電力量", "Consumption by site"),
            q.energy_total(by_site=True),
        ),
    )


def care() -> db.Dashboard:
    d = (
        base(
            "machi-care",
            title("見守り（集計）", "Care: aggregates"),
            ["care"],
            CARE_RULE + " Per-resident views are on the restricted board.",
        )
        .time("now-7d", "now")
        .with_variable(_site(CARE_PUBLISHED))
    )
    return _add(
        d,
        *_care_stats(w=12),
        table(
            title("日別・地区別（公表値）", "Per day and district (as published)"), q.care_table()
        ),
        timeseries(
            title("平均心拍数（日別）", "Mean heart rate (daily)"),
            q.care_daily("heart_rate_bpm"),
            "none",
            alias="$tag_site",
        ),
        timeseries(
            title("平均SpO2（日別）", "Mean SpO2 (daily)"),
            q.care_daily("spo2_pct"),
            "percent",
            alias="$tag_site",
        ),
        timeseries(
            title("平均皮膚温（日別）", "Mean skin temperature (daily)"),
            q.care_daily("skin_temp_c"),
            "celsius",
            alias="$tag_site",
        ),
        timeseries(
            title("平均バッテリー（日別）", "Mean wearable battery (daily)"),
            q.care_daily("battery_pct"),
            "percent",
            alias="$tag_site",
        ),
        timeseries(
            title("アラート件数（日別・公表値）", "Care alerts (daily, published numbers)"),
            q.care_daily(TOTAL),
            "short",
            alias="$tag_site",
        ),
    )


def care_residents() -> db.Dashboard:
    d = base(
        "machi-care-residents",
        title("見守り（個人・制限）", "Care: residents (restricted)"),
        ["care", "restricted"],
        "Per-resident data. Restricted: only the care team's Grafana team may view this "
        "folder (see docs/operations.md).",
    ).with_variable(_site("wearable"))
    return _add(
        d,
        table(title("アラート履歴", "Alert history"), q.resident_alerts()),
        timeseries(
            title("心拍数（個人別）", "Heart rate by resident"),
            q.resident_vitals("heart_rate_bpm"),
            "none",
            alias="$tag_device_id",
        ),
        timeseries(
            title("SpO2（個人別）", "SpO2 by resident"),
            q.resident_vitals("spo2_pct"),
            "percent",
            alias="$tag_device_id",
        ),
        table(title("最終受信・バッテリー", "Last seen and battery"), q.resident_last_seen()),
    )


def transit() -> db.Dashboard:
    d = base(
        "machi-transit",
        title("交通", "Transit"),
        ["transit", "bus"],
        "Bus KPIs. On time = arrival delay_s in [-60, 300] s (GTFS schedule vs observed).",
    ).with_variable(_site("bus"))
    d.with_variable(tag_variable("route", "路線 / Route", q.route_values()))
    return _add(
        d,
        _on_time_stat(),
        _mean_delay_stat(),
        _active_vehicles_stat(),
        stat(
            title("運行車両（最大）", "Active vehicles (peak)"),
            q.active_vehicles("time($__interval)"),
            "short",
            calc="max",
        ),
        timeseries(title("定時運行率の推移", "On-time performance"), q.on_time_pct(), "percent"),
        timeseries(
            title("平均遅延（路線別）", "Average delay by route"),
            q.mean_delay(),
            "s",
            alias="$tag_route_id",
        ),
        timeseries(
            title("平均速度（路線別）", "Average speed by route"),
            q.mean_speed(),
            "velocitykmh",
            alias="$tag_route_id",
        ),
        timeseries(
            title("平均乗車率（路線別）", "Average occupancy by route"),
            q.mean_occupancy(),
            "percent",
            alias="$tag_route_id",
        ),
        table(title("車両の現在位置", "Vehicle positions"), q.vehicle_positions()),
    )


def fleet() -> db.Dashboard:
    d = base(
        "machi-fleet",
        title("機器・取り込み状況", "Fleet & ingest health"),
        ["fleet", "ops"],
        "Edge agents (online, outbox depth), device last-seen, ingest throughput, lag and "
        "rejects by reason. Wearables' last-seen is on the restricted care board.",
    ).with_variable(_site())
    return _add(
        d,
        *_ingest_stats(),
        stat(title("未処理", "Ingest pending"), q.ingest_pending(), "short"),
        timeseries(
            title("送信待ち件数", "Outbox depth"), q.outbox_depth(), "short", alias="$tag_agent_id"
        ),
        timeseries(
            title("拒否（理由別）", "Rejects by reason"),
            q.rejects_by_reason(),
            "short",
            alias="$tag_reason",
        ),
        timeseries(
            title("取込遅延（ワーカー別）", "Ingest lag by worker"),
            q.ingest_lag(),
            "s",
            alias="$tag_worker",
        ),
        timeseries(title("取込速度", "Ingest rate"), q.ingest_rate(), "reqps", alias="$tag_worker"),
        table(title("エージェント状態", "Agent status"), q.agents_table(), w=12),
        table(
            title("電力量計 最終受信", "Energy meters last seen"),
            q.devices_last_seen("energy_meter"),
            w=6,
        ),
        table(title("バス 最終受信", "Buses last seen"), q.devices_last_seen("bus"), w=6),
        timeseries(
            title("通知の失敗（方式別）", "Alert channel failures"),
            q.channel_failures(),
            "short",
            alias="$tag_scheme",
        ),
    )


def alerts() -> db.Dashboard:
    d = base(
        "machi-alerts",
        title("アラート対応", "Alerts: response"),
        ["care", "alerts"],
        "Alerts handled by machi alerts run (alert_state): open, acknowledged and escalated "
        "alerts opened in the range, and the time to acknowledge per site. Real counts, not "
        "k-filtered (a single open alarm must show), hence the restricted folder.",
    ).with_variable(_site("alert_state"))
    return _add(
        d,
        stat(title("未対応", "Open"), q.alerts_in_state("open"), "short", no_value="0"),
        stat(title("確認済み", "Acknowledged"), q.alerts_in_state("acked"), "short", no_value="0"),
        stat(title("エスカレーション", "Escalated"), q.alerts_escalated(), "short", no_value="0"),
        stat(title("解決済み", "Resolved"), q.alerts_in_state("resolved"), "short", no_value="0"),
        timeseries(
            title("確認までの時間 (p90)", "Time to acknowledge (p90)"),
            q.ack_time_p90(),
            "s",
            alias="$tag_site",
        ),
        table(title("地区別 確認時間", "Time to acknowledge by site"), q.ack_time_by_site(), w=12),
        table(title("未解決のアラート", "Unresolved alerts"), q.alerts_unresolved()),
    )


BOARDS: tuple[Board, ...] = (
    Board("machi-overview", CITY, overview),
    Board("machi-green", CITY, green),
    Board("machi-care", CITY, care),
    Board("machi-transit", CITY, transit),
    Board("machi-fleet", CITY, fleet),
    Board("machi-alerts", RESTRICTED, alerts),
    Board("machi-care-residents", RESTRICTED, care_residents),
)
