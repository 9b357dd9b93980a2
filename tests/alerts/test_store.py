"""The alert store on SQLite and on a real PostgreSQL: dedupe, lease, fencing, ack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from alerts.store import AlertStore, Recipient, alert_id_of
from machi.servers import Postgres

R1 = [Recipient("k1", "mailto://127.0.0.1"), Recipient("k2", "json://127.0.0.1/h")]
R2 = [Recipient("k3", "json://127.0.0.1/t2")]
FALL = {"device_id": "w-1", "site": "hama", "type": "fall", "state": "open", "value": 1.0,
        "episode_ms": 1_700_000_000_000, "t": 1_700_000_000_000}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "sqlite":
        s = AlertStore.open(f"sqlite:///{tmp_path}/alerts.db")
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        schema = f"t{uuid.uuid4().hex[:8]}"
        base = AlertStore.open(pg.url)
        with base.engine.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
        base.close()
        s = AlertStore.open(f"{pg.url}?options=-csearch_path%3D{schema}")
    yield s
    s.close()


def record(s: AlertStore, event: dict, now: int = 1000) -> str:
    return s.record(event, route=0, priority="high", ack_within_s=3, recipients=R1, now_ms=now)


def test_redelivery_and_a_second_instance_collapse(store: AlertStore) -> None:
    assert record(store, FALL) == "opened"
    assert record(store, FALL, now=2000) == "duplicate"
    aid = alert_id_of("w-1", "fall", FALL["episode_ms"])
    row = store.get(aid)
    assert row is not None and row["state"] == "open" and row["tier"] == 1
    assert row["next_due_ms"] == 1000 + 3000  # the first tier's clock starts at opening
    notes = store.notifications_of(aid)
    assert sorted(n["recipient"] for n in notes) == ["k1", "k2"]
    assert {n["status"] for n in notes} == {"intent"}


def test_lease_is_exclusive_until_it_expires(store: AlertStore) -> None:
    assert store.acquire("a", 10_000, now_ms=0) == 1
    assert store.acquire("b", 10_000, now_ms=5_000) is None
    assert store.acquire("a", 10_000, now_ms=9_000) == 1  # renewal keeps the epoch
    assert store.acquire("b", 10_000, now_ms=19_001) == 2  # a stopped renewing: b takes over
    assert store.acquire("a", 10_000, now_ms=19_002) is None


def test_only_the_leader_escalates_and_claims(store: AlertStore) -> None:
    record(store, FALL)
    aid = alert_id_of("w-1", "fall", FALL["episode_ms"])
    store.acquire("a", 10_000, now_ms=3_000)
    (row,) = store.due(now_ms=4_000)
    assert store.step(row, 2, "notify", 6_000, R2, "b", 4_000) is None  # b does not lead
    assert store.step(row, 2, "notify", 6_000, R2, "a", 4_000) is not None
    assert store.step(row, 2, "notify", 6_000, R2, "a", 4_000) is None  # already stepped
    assert store.get(aid)["tier"] == 2  # type: ignore[index]
    (n,) = [n for n in store.pending(now_ms=4_000) if n["recipient"] == "k3"]
    assert not store.claim(n["id"], 0, "b", 4_000)
    assert store.claim(n["id"], 0, "a", 4_000)
    assert not store.claim(n["id"], 0, "a", 4_000)  # the attempt count moved on
    assert store.in_flight() == [n["id"]]  # handed to a channel, outcome unknown
    store.sent(n["id"], 4_100)
    assert store.in_flight() == []


def test_ack_stops_escalation_and_drops_unsent(store: AlertStore) -> None:
    record(store, FALL)
    aid = alert_id_of("w-1", "fall", FALL["episode_ms"])
    row = store.ack(aid, "key-1", "on my way <b>", now_ms=1500)
    assert row is not None and row["state"] == "acked" and row["note"] == "on my way <b>"
    assert store.due(now_ms=10**12) == []
    assert {n["status"] for n in store.notifications_of(aid)} == {"dropped"}
    assert store.ack("0" * 24, "key-1", None, now_ms=1600) is None
    done = store.resolve(aid, "key-2", None, now_ms=1700)
    assert done is not None and done["state"] == "resolved" and done["acked_by"] == "key-1"
    assert store.unresolved() == []


def test_device_alert_resolves_when_the_condition_clears(store: AlertStore) -> None:
    silent = {**FALL, "type": "silent", "value": 600.0}
    record(store, silent)
    assert record(store, {**silent, "state": "closed"}, now=5000) == "resolved"
    row = store.get(alert_id_of("w-1", "silent", FALL["episode_ms"]))
    assert (
        row is not None and row["state"] == "resolved" and row["resolved_by"] == "condition cleared"
    )
    # a care episode that closes keeps waiting for a person
    record(store, FALL)
    assert record(store, {**FALL, "state": "closed"}, now=5000) == "closed"
    assert store.get(alert_id_of("w-1", "fall", FALL["episode_ms"]))["state"] == "open"  # type: ignore[index]


def test_a_send_cut_short_by_a_crash_is_resent_once_by_the_next_leader(store: AlertStore) -> None:
    record(store, FALL)
    assert store.acquire("a", 10_000, now_ms=1_000) == 1
    n = store.pending(now_ms=1_000)[0]
    assert store.claim(n["id"], 0, "a", 1_000)  # "a" hands it to the channel, then dies
    assert store.in_flight() == [n["id"]]
    assert store.acquire("b", 10_000, now_ms=11_001) == 2
    (again,) = [p for p in store.pending(now_ms=11_001) if p["id"] == n["id"]]
    assert (again["status"], again["attempts"]) == ("intent", 1)  # the one possible repeat
    assert store.claim(again["id"], 1, "b", 11_001)
    store.sent(again["id"], 11_050)
    assert store.in_flight() == []
    assert [p for p in store.pending(now_ms=10**12) if p["id"] == n["id"]] == []
