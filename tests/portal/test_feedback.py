"""Residents' feedback end to end over HTTP, on SQLite and on a real PostgreSQL:
submit -> pending (never shown) -> an operator publishes/answers/rejects (audited) ->
only published text and replies appear, escaped. Bad input gets its own answer."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import create_engine, text

from api.auth import key_id
from contract.influx import InfluxV1
from contract.settings import Settings
from machi.servers import Postgres
from portal.feedback import FeedbackStore
from portal.strings import THEMES_PUBLIC
from tests.portal.conftest import OPERATOR, PUBLIC, make_client, portal_options, wait_ready

pytestmark = pytest.mark.integration

OP = {"Authorization": f"Bearer {OPERATOR}"}
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"&\''


@pytest.fixture(params=["sqlite", "postgresql"])
def feedback_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fb' / 'feedback.db'}"
        return
    pg: Postgres = request.getfixturevalue("postgres")
    name = f"fb_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield pg.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def client(
    settings: Settings, city: InfluxV1, tmp_path: Path, feedback_url: str
) -> Iterator[TestClient]:
    opts = portal_options(tmp_path, feedback_url, feedback_per_client=50)
    with make_client(settings, tmp_path, opts) as c:
        wait_ready(c)
        yield c


def _token(page: str, theme: str) -> str:
    form = page.split(f'id="feedback-{theme}"', 1)[1]
    m = re.search(r'name="token" value="([^"]+)"', form)
    assert m is not None
    return m.group(1)


def _submit(client: TestClient, theme: str = "green", wait: float = 0.35, **fields: str) -> object:
    token = _token(client.get("/").text, theme if theme in THEMES_PUBLIC else "green")
    time.sleep(wait)
    data = {"theme": theme, "lang": "ja", "page": "", "token": token, "text": "ok"} | fields
    return client.post("/feedback", data=data, follow_redirects=False)


def _comments(page: str) -> list[str]:
    return re.findall(r'<p class="comment-text">(.*?)</p>', page, re.S)


def test_round_trip_through_moderation(
    client: TestClient, tmp_path: Path, feedback_url: str
) -> None:
    r = _submit(
        client,
        "transit",
        text=f"バスの本数を増やしてください {XSS}",
        category="idea",
        district="yamate",
    )
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    assert r.headers["location"] == "/?sent=transit#feedback-transit"  # type: ignore[attr-defined]
    thanks = client.get("/?sent=transit")
    assert "担当者が確認してから掲載します" in thanks.text
    # Pending: stored, listed for operators, but nowhere on the page.
    assert "バスの本数" not in client.get("/").text
    assert "バスの本数" not in client.get("/districts/yamate/").text
    listed = client.get("/v1/feedback", headers=OP).json()
    assert [i["text"] for i in listed["items"]] == [f"バスの本数を増やしてください {XSS}"]
    item = listed["items"][0]
    assert (item["theme"], item["district"], item["category"], item["status"]) == (
        "transit",
        "yamate",
        "idea",
        "pending",
    )
    assert (
        client.get("/v1/feedback", headers={"Authorization": f"Bearer {PUBLIC}"}).status_code == 403
    )
    assert client.post(f"/v1/feedback/{item['id']}/publish").status_code == 401
    reply = "ご意見ありがとうございます。<b>4月</b>から増便します。"
    r2 = client.post(f"/v1/feedback/{item['id']}/answer", json={"reply": reply}, headers=OP)
    assert r2.status_code == 200 and r2.json()["reply"] == reply
    assert "増便" not in client.get("/").text  # answered but not yet published
    r3 = client.post(f"/v1/feedback/{item['id']}/publish", headers=OP)
    assert r3.status_code == 200 and r3.json()["status"] == "published"
    for path in ("/", "/districts/yamate/", "/en/"):
        page = client.get(path).text
        shown = _comments(page)
        assert shown == [str(escape(f"バスの本数を増やしてください {XSS}"))], path
        assert "<script>window.__pwned" not in page and 'onerror="window' not in page
        assert str(escape(reply)) in page
    assert _comments(client.get("/districts/kaigan/").text) == []  # other district
    # Reject: never shown again.
    assert (
        client.post(f"/v1/feedback/{item['id']}/reject", headers=OP).json()["status"] == "rejected"
    )
    assert _comments(client.get("/").text) == []
    assert client.post("/v1/feedback/999999/publish", headers=OP).status_code == 404
    # Audited, with the operator's key id (never the key).
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    actions = [a["action"] for a in audit if a["action"].startswith("feedback.")]
    # Every operator action is audited, attempts on missing items too.
    assert actions == [
        "feedback.list",
        "feedback.answer",
        "feedback.publish",
        "feedback.reject",
        "feedback.publish",
    ]
    assert {a["key_id"] for a in audit if a["action"].startswith("feedback.")} == {key_id(OPERATOR)}
    # Durable: a new store on the same database sees the item as it was left.
    store = FeedbackStore(feedback_url)
    try:
        again = store.get(item["id"])
        assert again is not None and again.status == "rejected" and again.reply == reply
    finally:
        store.close()


@pytest.mark.parametrize(
    ("fields", "status", "needle"),
    [
        ({"text": ""}, 422, "empty"),
        ({"text": "   \n  "}, 422, "empty"),
        ({"text": "あ" * 1001}, 422, "limit is 1000"),
        ({"text": "bad\x00byte"}, 422, "control characters"),
        ({"category": "complaint"}, 422, "category"),
        ({"token": "123.forged"}, 422, "not valid"),
        ({"theme": "weather"}, 404, "no theme"),
        ({"district": "atlantis"}, 404, "no district"),
        ({"page": "atlantis"}, 404, "no district"),
    ],
)
def test_bad_input_is_refused_and_kept(
    client: TestClient, fields: dict[str, str], status: int, needle: str
) -> None:
    r = _submit(client, **fields)
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert needle in html.unescape(r.text)  # type: ignore[attr-defined]
    assert client.get("/v1/feedback", headers=OP).json()["items"] == []  # nothing pending
    if status == 422:
        refused = client.get("/v1/feedback?status=refused", headers=OP).json()["items"]
        assert len(refused) == 1  # kept for inspection, never shown
        assert "<textarea" in r.text  # type: ignore[attr-defined]  # the form comes back


def test_oversized_text_is_echoed_escaped(client: TestClient) -> None:
    r = _submit(client, text=XSS + "x" * 1000)
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert "<script>window.__pwned" not in r.text  # type: ignore[attr-defined]
    assert str(escape("<script>window.__pwned=1</script>")) in r.text  # type: ignore[attr-defined]


def test_too_fast_and_honeypot(settings: Settings, city: InfluxV1, tmp_path: Path) -> None:
    with make_client(settings, tmp_path, portal_options(tmp_path, feedback_min_fill_s=5)) as c:
        wait_ready(c)
        r = _submit(c, wait=0)
        assert r.status_code == 422 and "too quickly" in r.text  # type: ignore[attr-defined]
        # A bot that fills the hidden field is thanked and ignored (kept as refused).
        r = _submit(c, wait=0, website="http://spam.example")
        assert r.status_code == 303  # type: ignore[attr-defined]
        items = c.get("/v1/feedback?status=refused", headers=OP).json()["items"]
        assert sorted(i["reason"] for i in items) == ["honeypot", "token"]
        assert c.get("/v1/feedback", headers=OP).json()["items"] == []


def test_a_flood_gets_429(settings: Settings, city: InfluxV1, tmp_path: Path) -> None:
    with make_client(settings, tmp_path, portal_options(tmp_path, feedback_per_client=3)) as c:
        wait_ready(c)
        tokens = [_token(c.get("/en/").text, "care") for _ in range(6)]
        assert len(set(tokens)) == 6  # every page carries fresh tokens
        time.sleep(0.35)
        codes = []
        for i, token in enumerate(tokens):
            data = {"theme": "care", "lang": "en", "token": token, "text": f"comment {i}"}
            codes.append(c.post("/feedback", data=data, follow_redirects=False))
        assert [r.status_code for r in codes] == [303, 303, 303, 429, 429, 429]
        assert int(codes[3].headers["retry-after"]) >= 1
        assert len(c.get("/v1/feedback", headers=OP).json()["items"]) == 3


def test_a_token_works_once(client: TestClient) -> None:
    token = _token(client.get("/").text, "green")
    time.sleep(0.35)
    data = {"theme": "green", "lang": "ja", "token": token, "text": "一度目"}
    assert client.post("/feedback", data=data, follow_redirects=False).status_code == 303
    again = client.post("/feedback", data=data | {"text": "二度目"}, follow_redirects=False)
    assert again.status_code == 422 and "already sent" in again.text
    # ...and a token of one theme does not post to another.
    other = _token(client.get("/").text, "care")
    time.sleep(0.35)
    r = client.post("/feedback", data=data | {"token": other}, follow_redirects=False)
    assert r.status_code == 422 and "not valid" in r.text
    assert [i["text"] for i in client.get("/v1/feedback", headers=OP).json()["items"]] == ["一度目"]
