"""Alerts end to end with real servers and processes: telemetry -> ingest + events worker
-> `machi alerts run` -> SMTP server and webhook receiver; acknowledgement through
`machi api`; restart and fail-over of the alerts instance."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from alerts.store import AlertStore, alert_id_of
from contract.influx import InfluxV1
from contract.settings import Settings
from machi.receivers import SmtpReceiver, WebhookReceiver
from machi.servers import IngestProcess, Mosquitto, Postgres
from machi.testkit import wait_for
from tests.alerts.harness import (
    CARE_ID,
    SECRET,
    Rig,
    Telemetry,
    apprise_json,
    by_device,
    write_rules,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as s:
        yield s


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as h:
        yield h


@pytest.fixture
def peer(settings: Settings) -> Iterator[Telemetry]:
    p = Telemetry(settings)
    yield p
    p.close()


def tier1_recorded(store: AlertStore, device_id: str) -> bool:
    """True once every tier-1 notification of the device's alert is committed as sent
    (killing before that is the documented crash window: a possible repeat)."""
    rows = [a for a in store.unresolved() if a["device_id"] == device_id]
    notes = store.notifications_of(rows[0]["alert_id"]) if rows else []
    return len(notes) == 3 and all(n["status"] == "sent" for n in notes)


def fall(peer: Telemetry, dev: str, seq: int = 1) -> float:
    """Publish a fall reading now; returns the publish time."""
    t0 = time.time()
    peer.send("wearable", dev, seq, [{"t": int(t0 * 1000), "fall": True, "heart_rate_bpm": 88}])
    return t0


def test_fall_reaches_tier1_escalates_after_ack_within_and_ack_stops_it(
    tmp_path: Path, settings: Settings, influx: InfluxV1, mosquitto: Mosquitto,
    smtp: SmtpReceiver, hook: WebhookReceiver, peer: Telemetry,
) -> None:  # fmt: skip
    ack1, ack2 = 3.0, 2.0
    rules = write_rules(tmp_path / "rules.toml", smtp, hook, ack1, ack2)
    rig = Rig(tmp_path, settings, rules, f"sqlite:///{tmp_path}/alerts.db")
    ingest = IngestProcess(tmp_path / "ingest", mosquitto.url, settings.influx_url,
                           settings.influx_db, settings.topic_prefix, open_mode=True)  # fmt: skip
    try:
        ingest.start(timeout=60)
        rig.procs.append(ingest)
        rig.events()
        rig.alerts()
        rig.start_api()
        t0 = fall(peer, "w-a")
        fall(peer, "w-b")
        # tier 1: email, JSON webhook and signed webhook, for both residents
        wait_for(lambda: len(smtp.to("desk@care.example")) == 2)
        wait_for(lambda: len(hook.at("/t1")) == 2 and len(hook.at("/t1s")) == 2)
        (signed_a,) = by_device(hook.at("/t1s"), "w-a")
        (signed_b,) = by_device(hook.at("/t1s"), "w-b")
        assert signed_a.signature_ok(SECRET) and not signed_a.signature_ok("wrong")
        body = signed_a.json()
        aid = body["alert_id"]
        assert body["type"] == "fall" and body["priority"] == "high" and body["site"] == "hama"
        assert body["link"] == f"https://care.example/api/v1/alerts/{aid}" and body["tier"] == 1
        assert "value" not in body and "88" not in signed_a.body.decode()  # no health values
        mail = next(m for m in smtp.mails if aid in m.body)
        assert "HIGH" in mail.subject and "w-a" in mail.body and mail.at - t0 < 5
        bid = signed_b.json()["alert_id"]

        # w-b is acknowledged through the API before its tier runs out
        r = rig.call("POST", f"/v1/alerts/{bid}/ack", json={"note": "<script>x</script> on my way"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "acked" and r.json()["acked_by"] == CARE_ID
        assert r.headers["content-type"].startswith("application/json")

        # w-a is not: tier 2 after ack_within_s, never earlier
        (t2,) = wait_for(lambda: apprise_json(hook.at("/t2"), "w-a"), timeout=ack1 + 5)
        assert ack1 <= t2.at - t0 <= ack1 + 2.5, t2.at - t0
        # the last tier is reminded every ack_within_s until someone acknowledges
        rem = wait_for(lambda: apprise_json(hook.at("/t2"), "w-a")[1:], timeout=ack2 + 5)[0]
        assert "reminder" in rem.json()["title"] and rem.at - t2.at >= ack2 - 0.3

        listed = rig.call("GET", "/v1/alerts?state=open").json()["alerts"]
        rows = {a["alert_id"]: a for a in listed}
        assert rows[aid]["tier"] == 2 and rows[aid]["acked_by"] is None
        assert (
            rows[aid]["device_id"] == "w-a" and rows[aid]["opened"] and rows[aid]["type"] == "fall"
        )
        assert rows[bid]["acked_by"] == CARE_ID and rows[bid]["acked_at"] and rows[bid]["tier"] == 1

        assert rig.call("POST", f"/v1/alerts/{aid}/ack").status_code == 200
        n_t2 = len(hook.at("/t2"))
        time.sleep(2 * ack2 + 1)
        assert len(hook.at("/t2")) == n_t2  # escalation stopped
        assert apprise_json(hook.at("/t2"), "w-b") == []  # acked in time: never escalated
        one = rig.call("GET", f"/v1/alerts/{aid}").json()
        assert {n["status"] for n in one["notifications"]} == {"sent"}
        assert [n["tier"] for n in one["notifications"]].count(2) == 2  # notify + 1 reminder

        assert rig.call("POST", f"/v1/alerts/{bid}/resolve").json()["state"] == "resolved"
        assert bid not in {
            a["alert_id"] for a in rig.call("GET", "/v1/alerts?state=open").json()["alerts"]
        }
        assert rig.call("POST", f"/v1/alerts/{'0' * 24}/ack").status_code == 404
        assert rig.call("POST", "/v1/alerts/not-an-id/ack").status_code == 422
        assert (
            rig.call("POST", f"/v1/alerts/{aid}/ack", json={"note": "x" * 501}).status_code == 422
        )

        # operators see it in InfluxDB: state, tier, escalation and time to acknowledge
        def state_a() -> list[dict]:
            return influx.rows("SELECT * FROM alert_state WHERE device_id = 'w-a'")

        (row,) = wait_for(lambda: [r for r in state_a() if r["state"] == "acked"])
        assert row["tier"] == 2 and row["escalated"] is True and row["ack_s"] >= ack1 + ack2
        audit = (tmp_path / "audit.jsonl").read_text()
        assert '"ack_care_alert"' in audit and '"resolve_care_alert"' in audit
        assert "on my way" not in audit  # the note is stored, not copied into the audit log
    finally:
        rig.stop()


@pytest.mark.faults
def test_restart_mid_episode_neither_repeats_nor_loses_a_step(
    tmp_path: Path, settings: Settings, influx: InfluxV1,
    smtp: SmtpReceiver, hook: WebhookReceiver, peer: Telemetry,
) -> None:  # fmt: skip
    ack1 = 3.0
    rules = write_rules(tmp_path / "rules.toml", smtp, hook, ack1, 60)
    db = f"sqlite:///{tmp_path}/alerts.db"
    rig = Rig(tmp_path, settings, rules, db)
    try:
        rig.events()
        first = rig.alerts("alerts")
        t0 = fall(peer, "w-r")
        store = AlertStore.open(db)
        wait_for(lambda: tier1_recorded(store, "w-r"))
        first.kill()  # crash after tier 1, before tier 2 is due
        time.sleep(max(0.0, t0 + ack1 + 1 - time.time()))  # tier 2 falls due while down
        assert hook.at("/t2") == []
        again = rig.alerts("alerts")  # same instance name and MQTT session
        wait_for(lambda: hook.at("/t2"), timeout=15)
        time.sleep(1.5)
        assert len(smtp.mails) == 1 and len(hook.at("/t1")) == 1 and len(hook.at("/t1s")) == 1
        assert len(hook.at("/t2")) == 1 and hook.at("/t2")[0].at - t0 >= ack1
        assert again.metric("machi_alerts_possible_repeats_total") == 0
        aid = json.loads(hook.at("/t1s")[0].body)["alert_id"]
        notes = store.notifications_of(aid)
        assert sorted((n["tier"], n["status"]) for n in notes) == [(1, "sent")] * 3 + [(2, "sent")]
        store.close()
    finally:
        rig.stop()


@pytest.mark.faults
def test_standby_takes_over_when_the_active_instance_dies_mid_escalation(
    tmp_path: Path, settings: Settings, influx: InfluxV1, postgres: Postgres,
    smtp: SmtpReceiver, hook: WebhookReceiver, peer: Telemetry,
) -> None:  # fmt: skip
    schema = f"ha{uuid.uuid4().hex[:8]}"
    base = AlertStore.open(postgres.url)
    with base.engine.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    base.close()
    db = f"{postgres.url}?options=-csearch_path%3D{schema}"
    ack1 = 4.0
    rules = write_rules(tmp_path / "rules.toml", smtp, hook, ack1, 60)
    rig = Rig(tmp_path, settings, rules, db)
    try:
        ev_a, _ev_b = rig.events("ev-a"), rig.events("ev-b")  # two events workers at once
        a = rig.alerts("a", "--lease-s", "6")
        b = rig.alerts("b", "--lease-s", "6")
        wait_for(lambda: a.leads + b.leads == 1, timeout=15)
        leader, standby = (a, b) if a.leads else (b, a)
        t0 = fall(peer, "w-h")
        store = AlertStore.open(db)
        wait_for(lambda: tier1_recorded(store, "w-h"))
        store.close()
        leader.kill()  # the active instance dies in the middle of the escalation
        killed = time.monotonic()
        ev_a.kill()
        wait_for(lambda: standby.leads, timeout=30)
        assert time.monotonic() - killed < 30
        (t2,) = wait_for(lambda: hook.at("/t2"), timeout=30)
        assert t2.at - t0 >= ack1
        t1 = fall(peer, "w-i", seq=1)  # a new episode after the fail-over
        wait_for(lambda: len(smtp.mails) == 2, timeout=10)
        assert smtp.mails[1].at - t1 < 5
        time.sleep(1.5)
        # no duplicate: every (alert, tier, recipient) once, though both events workers
        # published the first fall and both alerts instances stored it
        assert len(smtp.mails) == 2 and len(hook.at("/t1")) == 2 and len(hook.at("/t1s")) == 2
        assert len(hook.at("/t2")) == 1
        assert standby.metric("machi_alerts_possible_repeats_total") == 0
    finally:
        rig.stop()


def test_failing_channel_is_retried_while_the_others_deliver_and_bad_messages_are_kept(
    tmp_path: Path, settings: Settings, influx: InfluxV1,
    smtp: SmtpReceiver, hook: WebhookReceiver, peer: Telemetry,
) -> None:  # fmt: skip
    rules = write_rules(tmp_path / "rules.toml", smtp, hook, 60, 60)
    rig = Rig(tmp_path, settings, rules, f"sqlite:///{tmp_path}/alerts.db")
    hook.fail_status["/t1"] = 500
    try:
        al = rig.alerts("alerts", env={"MACHI_ALERTS_RETRY_BASE_S": "0.5"})
        topic = f"{settings.topic_prefix}/v1/alerts/care/w-f"
        now = int(time.time() * 1000)
        good = {"device_id": "w-f", "site": "hama", "type": "spo2_low", "state": "open",
                "value": 85.0, "episode_ms": now, "t": now}  # fmt: skip
        for payload in (
            b"{not json",
            json.dumps({**good, "type": "nope"}).encode(),
            json.dumps(good).encode(),
        ):
            peer.raw(topic, payload)
        wait_for(lambda: smtp.mails and hook.at("/t1s"))  # the other channels of the tier
        wait_for(lambda: al.metric("machi_alerts_channel_failures_total", 'scheme="json"') >= 2)
        assert hook.at("/t1") == []
        del hook.fail_status["/t1"]
        wait_for(lambda: hook.at("/t1"), timeout=15)  # retried with backoff until it works
        assert al.metric("machi_alerts_rejected_total", 'reason="invalid_json"') == 1
        assert al.metric("machi_alerts_rejected_total", 'reason="schema"') == 1
        kept = [
            json.loads(x) for x in (tmp_path / "alerts-rejected.jsonl").read_text().splitlines()
        ]
        assert [k["payload"][:9] for k in kept] == ["{not json", '{"device_'] and kept[0][
            "topic"
        ] == topic
        assert len(smtp.mails) == 1 and len(hook.at("/t1")) == 1
    finally:
        rig.stop()


def test_silent_wearable_raises_a_device_alert_that_closes_when_data_resumes(
    tmp_path: Path, settings: Settings, influx: InfluxV1,
    smtp: SmtpReceiver, hook: WebhookReceiver, peer: Telemetry,
) -> None:  # fmt: skip
    rules = write_rules(tmp_path / "rules.toml", smtp, hook, 60, 60)
    db = f"sqlite:///{tmp_path}/alerts.db"
    rig = Rig(tmp_path, settings, rules, db)
    try:
        rig.events("ev", "--silent-after-s", "3")
        rig.alerts()
        now = int(time.time() * 1000)
        peer.send("wearable", "w-s", 1, [{"t": now, "heart_rate_bpm": 70, "battery_pct": 10.0}])
        (low,) = wait_for(lambda: apprise_json(hook.at("/dev"), "w-s"))
        assert "battery" in low.json()["title"].lower() and "LOW" in low.json()["title"]
        (silent,) = wait_for(
            lambda: [
                p for p in apprise_json(hook.at("/dev"), "w-s") if "silent" in p.json()["title"]
            ],
            timeout=15,
        )
        store = AlertStore.open(db)
        aid = alert_id_of("w-s", "silent", now + 3000)
        assert store.get(aid)["state"] == "open"  # type: ignore[index]
        peer.send(
            "wearable",
            "w-s",
            2,
            [{"t": int(time.time() * 1000), "heart_rate_bpm": 71, "battery_pct": 90.0}],
        )
        wait_for(lambda: store.get(aid)["state"] == "resolved")  # type: ignore[index]
        row = store.get(aid)
        assert row is not None and row["resolved_by"] == "condition cleared"
        bat = alert_id_of("w-s", "battery_low", now)
        wait_for(lambda: store.get(bat)["state"] == "resolved")  # type: ignore[index]
        pts = influx.rows("SELECT state FROM device_alert WHERE \"type\" = 'silent'")
        assert [p["state"] for p in pts] == ["open", "closed"]
        store.close()
        assert smtp.mails == []  # device problems go to the desk webhook only
    finally:
        rig.stop()


def test_api_lists_open_alerts_only_with_a_care_key(tmp_path: Path, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.config import ApiConfig

    db = f"sqlite:///{tmp_path}/alerts.db"
    cfg = ApiConfig(keys="pub-key-0123456789abcd:public", audit_log=tmp_path / "audit.jsonl")
    client = TestClient(create_app(settings, cfg, alerts_db=db))
    r = client.get(
        "/v1/alerts?state=open", headers={"Authorization": "Bearer pub-key-0123456789abcd"}
    )
    assert r.status_code == 403
    assert client.post(f"/v1/alerts/{'0' * 24}/ack").status_code == 401
