"""`machi dashboards deploy` against a recorder of Grafana's HTTP API contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dashboards.boards import BOARDS, FOLDERS, RESTRICTED
from dashboards.deploy import DeployError, InfluxTarget, connect, deploy
from dashboards.export import board_json
from dashboards.influxql import DATASOURCE_UID
from machi.cli import main
from tests.dashboards.grafana_recorder import GrafanaRecorder

INFLUX = InfluxTarget("http://influxdb:8086", "city", "grafana", "s3cret")


@pytest.fixture
def grafana() -> Iterator[GrafanaRecorder]:
    with GrafanaRecorder() as g:
        yield g


def _deploy(g: GrafanaRecorder, influx: InfluxTarget = INFLUX, **kw):
    return deploy(connect(g.url, g.token), g.url, influx, **kw)


def test_first_deploy_creates_everything(grafana: GrafanaRecorder) -> None:
    report = _deploy(grafana)
    assert {a for _k, _u, a in report.actions} == {"created"}
    assert set(grafana.dashboards) == {b.uid for b in BOARDS}
    assert set(grafana.folders) == {f.uid for f in FOLDERS}
    ds = grafana.datasources[DATASOURCE_UID]
    assert ds["url"] == "http://influxdb:8086" and ds["jsonData"]["dbName"] == "city"
    assert ds["_password"] == "s3cret"
    stored = grafana.dashboards["machi-care-residents"]
    assert stored["meta"]["folderUid"] == RESTRICTED.uid
    assert stored["dashboard"]["panels"] == board_json(BOARDS[-1])["panels"]


def test_second_deploy_changes_nothing(grafana: GrafanaRecorder) -> None:
    _deploy(grafana)
    before = len(grafana.writes())
    versions = {u: d["dashboard"]["version"] for u, d in grafana.dashboards.items()}
    report = _deploy(grafana)
    assert report.changed == []
    assert len(report.actions) == 1 + len(FOLDERS) + len(BOARDS)
    assert len(grafana.writes()) == before  # only GETs the second time
    assert {u: d["dashboard"]["version"] for u, d in grafana.dashboards.items()} == versions


def test_drift_is_repaired_and_only_there(grafana: GrafanaRecorder) -> None:
    _deploy(grafana)
    # Someone edits a panel in the UI and renames a folder.
    grafana.dashboards["machi-green"]["dashboard"]["panels"][0]["title"] = "edited"
    grafana.folders[RESTRICTED.uid]["title"] = "renamed"
    grafana.requests.clear()
    report = _deploy(grafana)
    assert sorted(report.changed) == [
        ("dashboard", "machi-green", "updated"),
        ("folder", RESTRICTED.uid, "updated"),
    ]
    assert grafana.writes() == [
        ("PUT", f"/api/folders/{RESTRICTED.uid}"),
        ("POST", "/api/dashboards/db"),
    ]
    assert grafana.dashboards["machi-green"]["dashboard"]["version"] == 2
    assert _deploy(grafana).changed == []


def test_datasource_change_and_password_rotation(grafana: GrafanaRecorder) -> None:
    _deploy(grafana)
    moved = InfluxTarget("http://influx2:8086", "city", "grafana", "new")
    assert _deploy(grafana, moved).changed == [("datasource", DATASOURCE_UID, "updated")]
    ds = grafana.datasources[DATASOURCE_UID]
    assert ds["url"] == "http://influx2:8086"
    assert ds["_password"] == "s3cret"  # not re-sent: Grafana already stores one
    assert _deploy(grafana, moved).changed == []
    _deploy(grafana, moved, rotate_password=True)
    assert grafana.datasources[DATASOURCE_UID]["_password"] == "new"


def test_unknown_machi_dashboards_are_reported_not_deleted(grafana: GrafanaRecorder) -> None:
    _deploy(grafana)
    old = dict(board_json(BOARDS[0]), uid="machi-old")
    grafana.dashboards["machi-old"] = {"dashboard": old, "meta": {"folderUid": ""}}
    report = _deploy(grafana)
    assert report.unknown_dashboards == ["machi-old"]
    assert "machi-old" in grafana.dashboards


def test_wrong_token_is_a_clear_error(grafana: GrafanaRecorder) -> None:
    with pytest.raises(DeployError, match="refused.*Admin role"):
        deploy(connect(grafana.url, "wrong"), grafana.url, INFLUX)
    assert grafana.datasources == {}


def test_unhealthy_and_unreachable_grafana(grafana: GrafanaRecorder) -> None:
    grafana.healthy = False
    with pytest.raises(DeployError, match="database='failing'"):
        _deploy(grafana)
    with pytest.raises(DeployError, match="cannot reach Grafana"):
        deploy(connect("http://127.0.0.1:9", "t"), "http://127.0.0.1:9", INFLUX)


def test_cli_deploy_twice_with_basic_auth(
    grafana: GrafanaRecorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MACHI_GRAFANA_URL", grafana.url)
    monkeypatch.setenv("MACHI_GRAFANA_USER", "admin")
    monkeypatch.setenv("MACHI_GRAFANA_PASSWORD", "pw")
    monkeypatch.setenv("MACHI_GRAFANA_INFLUX_URL", "http://influxdb:8086")
    monkeypatch.delenv("MACHI_GRAFANA_TOKEN", raising=False)
    assert main(["dashboards", "deploy"]) == 0
    assert f"{1 + len(FOLDERS) + len(BOARDS)} changed, 0 unchanged" in capsys.readouterr().out
    assert main(["dashboards", "deploy"]) == 0
    assert f"0 changed, {1 + len(FOLDERS) + len(BOARDS)} unchanged" in capsys.readouterr().out


def test_cli_without_credentials_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("MACHI_GRAFANA_TOKEN", "MACHI_GRAFANA_USER", "MACHI_GRAFANA_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert main(["dashboards", "deploy", "--url", "http://127.0.0.1:9"]) == 1
    assert "MACHI_GRAFANA_TOKEN" in capsys.readouterr().err
