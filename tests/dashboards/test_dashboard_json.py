"""The committed JSON is the generated JSON, and it round-trips through the SDK models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.boards import BOARDS, FOLDERS, RESTRICTED
from dashboards.export import JSON_DIR, board_json, board_path, export, render, stale
from dashboards.influxql import DATASOURCE_UID, InfluxQLQuery


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.uid)
def test_committed_json_equals_generated(board) -> None:
    path = board_path(board)
    assert path.read_text(encoding="utf-8") == render(board_json(board)), (
        f"{path} is stale: run `machi dashboards export` and commit the result"
    )


def test_no_stray_json_files() -> None:
    expected = {board_path(b) for b in BOARDS}
    assert set(JSON_DIR.rglob("*.json")) == expected


def test_stale_detects_an_edit(tmp_path: Path) -> None:
    export(tmp_path)
    assert stale(tmp_path) == []
    victim = board_path(BOARDS[0], tmp_path)
    victim.write_text(victim.read_text().replace("machi", "mach1", 1))
    assert stale(tmp_path) == [victim]
    assert export(tmp_path) == [victim]
    assert export(tmp_path) == []


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.uid)
def test_round_trip_through_sdk_models(board) -> None:
    data = json.loads(board_path(board).read_text(encoding="utf-8"))
    model = Dashboard.from_json(data)
    # Targets decode into the typed InfluxQL model, not the SDK's untyped fallback.
    for panel in model.panels or []:
        assert all(isinstance(t, InfluxQLQuery) for t in panel.targets or [])
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert again == data


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.uid)
def test_bilingual_titles_and_fixed_datasource(board) -> None:
    data = board_json(board)
    titles = [data["title"]] + [p["title"] for p in data["panels"]]
    for t in titles:
        ja, _, en = t.partition(" / ")
        assert ja and en and any(ord(c) > 0x3000 for c in ja) and en.isascii(), t
    for p in data["panels"]:
        for target in p["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["rawQuery"] is True
    ids = [p["id"] for p in data["panels"]]
    assert ids == list(range(1, len(ids) + 1))


def _outer(query: str) -> str:
    """The outermost statement with every parenthesised subquery removed."""
    while (m := re.search(r"\([^()]*\)", query)) is not None:
        query = query[: m.start()] + query[m.end() :]
    return query


def test_outer_statement_helper() -> None:
    assert _outer(
        'SELECT a FROM (SELECT b FROM (SELECT c) GROUP BY "device_id") GROUP BY "site"'
    ) == ('SELECT a FROM  GROUP BY "site"')


def test_per_resident_panels_only_in_restricted_folder() -> None:
    for board in BOARDS:
        per_resident = [
            p["title"]
            for p in board_json(board)["panels"]
            for t in p["targets"]
            if any(f'"{m}"' in t["query"] for m in ("wearable", "care_alert", "alert_state"))
            and '"device_id"' in _outer(t["query"])
        ]
        if board.folder is RESTRICTED:
            assert per_resident, board.uid
        else:
            assert per_resident == [], board.uid


def test_shared_boards_read_no_raw_care_data() -> None:
    """Grafana can pick any site subset and range, so differencing raw care aggregates
    would be possible there: shared boards read only the API's protected points."""
    raw = ("wearable", "care_alert", "alert_state")
    for board in BOARDS:
        if board.folder is RESTRICTED:
            continue
        data = board_json(board)
        queries = [t["query"] for p in data["panels"] for t in p["targets"]]
        queries += [v["query"] for v in data.get("templating", {}).get("list", [])]
        for query in queries:
            assert not any(f'"{m}"' in query for m in raw), (board.uid, query)
    care = board_json(next(b for b in BOARDS if b.uid == "machi-care"))
    assert all('"care_published"' in t["query"] for p in care["panels"] for t in p["targets"])


def test_folders_have_distinct_uids() -> None:
    assert len({f.uid for f in FOLDERS}) == len(FOLDERS)
    assert {b.folder for b in BOARDS} == set(FOLDERS)


def test_export_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from machi.cli import main

    assert main(["dashboards", "export", "--out", str(tmp_path)]) == 0
    assert main(["dashboards", "export", "--out", str(tmp_path), "--check"]) == 0
    # A hand edit makes the file stale, and the check says which.
    care = tmp_path / "city" / "machi-care.json"
    care.write_text(care.read_text(encoding="utf-8").replace("care_published", "wearable"))
    assert main(["dashboards", "export", "--out", str(tmp_path), "--check"]) == 1
    assert "machi-care.json" in capsys.readouterr().err
