"""Push machi's datasource, folders and dashboards to a running Grafana over its HTTP API.

Idempotent: every object has a fixed uid, the current state is read first and an object
is written only when it differs (dashboards with ``overwrite: true``), so a second run
changes nothing and reports every object as ``unchanged``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards.boards import BOARDS, FOLDERS
from dashboards.export import board_json
from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID

log = logging.getLogger("machi.dashboards")

DATASOURCE_NAME = "machi InfluxDB"
# Fields Grafana adds to a stored dashboard; they are not part of what we define.
_SERVER_FIELDS = ("id", "version")


class DeployError(RuntimeError):
    """Grafana refused or could not be reached; the message says what to check."""


@dataclass(frozen=True)
class InfluxTarget:
    """The InfluxDB the datasource points at, as Grafana's server reaches it."""

    url: str
    database: str
    user: str | None = None
    password: str | None = None


@dataclass
class Report:
    """What a deploy did, per object: created, updated or unchanged."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)
    unknown_dashboards: list[str] = field(default_factory=list)

    def add(self, kind: str, uid: str, action: str) -> None:
        log.info("%s %s: %s", kind, uid, action)
        self.actions.append((kind, uid, action))

    @property
    def changed(self) -> list[tuple[str, str, str]]:
        return [a for a in self.actions if a[2] != "unchanged"]


def connect(url: str, token: str | None = None, basic: tuple[str, str] | None = None) -> GrafanaApi:
    """A client for ``url`` with a service-account token or basic auth."""
    credential: str | tuple[str, str] | None = token or basic
    if credential is None:
        raise DeployError(
            "no Grafana credentials: set MACHI_GRAFANA_TOKEN (a service-account token with "
            "the Admin role) or MACHI_GRAFANA_USER and MACHI_GRAFANA_PASSWORD"
        )
    return GrafanaApi.from_url(url, credential=credential, timeout=10.0)


def _get(api: GrafanaApi, path: str) -> dict[str, Any] | None:
    """GET that maps 404 to None (the object does not exist yet)."""
    try:
        result: dict[str, Any] = api.client.GET(path)
        return result
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def datasource_body(influx: InfluxTarget) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": influx.url,
        "database": influx.database,
        "user": influx.user or "",
        "isDefault": True,
        # dbName is where Grafana >= 8 reads the database; "database" for older ones.
        "jsonData": {"dbName": influx.database, "httpMode": "GET", "version": "InfluxQL"},
    }
    if influx.password:
        body["secureJsonData"] = {"password": influx.password}
    return body


def _differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True if any desired key (recursively for dicts) has another value in ``current``."""
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            if _differs(have, want):
                return True
        elif have != want:
            return True
    return False


def deploy_datasource(
    api: GrafanaApi, influx: InfluxTarget, report: Report, rotate_password: bool = False
) -> None:
    desired = datasource_body(influx)
    current = _get(api, f"/datasources/uid/{DATASOURCE_UID}")
    if current is None:
        api.client.POST("/datasources", json=desired)
        report.add("datasource", DATASOURCE_UID, "created")
        return
    comparable = {k: v for k, v in desired.items() if k != "secureJsonData"}
    # Grafana never returns a stored password, only that one is set: re-send it only when
    # none is stored or the operator asks for a rotation.
    has_password = bool(current.get("secureJsonFields", {}).get("password"))
    password_change = bool(influx.password) and (rotate_password or not has_password)
    if _differs(current, comparable) or password_change:
        body = desired if password_change else comparable
        api.client.PUT(f"/datasources/uid/{DATASOURCE_UID}", json=body)
        report.add("datasource", DATASOURCE_UID, "updated")
    else:
        report.add("datasource", DATASOURCE_UID, "unchanged")


def deploy_folders(api: GrafanaApi, report: Report) -> None:
    for folder in FOLDERS:
        current = _get(api, f"/folders/{folder.uid}")
        if current is None:
            api.client.POST("/folders", json={"uid": folder.uid, "title": folder.title})
            report.add("folder", folder.uid, "created")
        elif current.get("title") != folder.title:
            api.client.PUT(
                f"/folders/{folder.uid}", json={"title": folder.title, "overwrite": True}
            )
            report.add("folder", folder.uid, "updated")
        else:
            report.add("folder", folder.uid, "unchanged")


def deploy_dashboards(api: GrafanaApi, report: Report) -> None:
    for board in BOARDS:
        desired = board_json(board)
        current = _get(api, f"/dashboards/uid/{board.uid}")
        if current is not None:
            stored = {
                key: v
                for key, v in current.get("dashboard", {}).items()
                if key not in _SERVER_FIELDS
            }
            same_folder = current.get("meta", {}).get("folderUid") == board.folder.uid
            if stored == desired and same_folder:
                report.add("dashboard", board.uid, "unchanged")
                continue
        api.client.POST(
            "/dashboards/db",
            json={
                "dashboard": {**desired, "id": None},
                "folderUid": board.folder.uid,
                "overwrite": True,
                "message": "machi dashboards deploy",
            },
        )
        report.add("dashboard", board.uid, "created" if current is None else "updated")


def find_unknown(api: GrafanaApi, report: Report) -> None:
    """machi-tagged dashboards that no longer exist in the code (reported, never deleted)."""
    known = {b.uid for b in BOARDS}
    hits = api.client.GET("/search", params={"type": "dash-db", "tag": "machi"})
    report.unknown_dashboards = sorted(h["uid"] for h in hits if h.get("uid") not in known)


def check_health(api: GrafanaApi, url: str) -> None:
    try:
        health = api.client.GET("/health")
    except GrafanaException as exc:
        raise DeployError(f"Grafana at {url} answered {exc}: is it starting up?") from None
    except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
        raise DeployError(
            f"cannot reach Grafana at {url} ({exc}); check MACHI_GRAFANA_URL"
        ) from None
    if health.get("database") != "ok":
        raise DeployError(f"Grafana at {url} reports database={health.get('database')!r}")


def deploy(
    api: GrafanaApi,
    url: str,
    influx: InfluxTarget,
    rotate_password: bool = False,
) -> Report:
    """Deploy everything; raise :class:`DeployError` with the reason on failure."""
    check_health(api, url)
    report = Report()
    try:
        deploy_datasource(api, influx, report, rotate_password)
        deploy_folders(api, report)
        deploy_dashboards(api, report)
        find_unknown(api, report)
    except GrafanaException as exc:
        hint = ""
        if exc.status_code in (401, 403):
            hint = "; the token or user needs the Admin role (datasources and folders)"
        raise DeployError(f"Grafana at {url} refused: {exc}{hint}") from None
    return report
