"""Ingest end to end on a real Mosquitto and a real InfluxDB."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from contract.influx import InfluxV1
from contract.schema import encode_message, make_message
from contract.settings import Settings
from ingest.deadletter import read_dead_letters
from machi.simulate import Fleet, Publisher
from machi.testkit import stored, stored_total, wait_until


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.parametrize("protocol", [5, 311])
def test_publish_to_query_exact(
    settings: Settings, influx: InfluxV1, ingest_factory, protocol: int
) -> None:
    ingest_factory(protocol=protocol)
    fleet = Fleet.build(meters=6, wearables=5, buses=3, seed=7)
    pub = Publisher(settings, "pub-exact")
    sent: dict[str, int] = {"energy_meter": 0, "wearable": 0, "bus": 0}
    t0 = now_ms() - 60_000
    last = None
    for i in range(20):
        for msg in fleet.messages(t0 + i * 1000, 0.1, 5):
            pub.publish(msg)
            sent[msg.kind] += len(msg.readings)
            last = msg
    assert pub.flush(30)
    pub.close()
    total = sum(sent.values())
    got = wait_until(lambda: stored_total(influx), lambda n: n >= total, timeout=30)
    assert got == total
    for kind, n in sent.items():
        assert stored(influx, kind) == n
    # Exact values of one reading, with the contract's tags and types.
    assert last is not None and last.kind == "bus"
    r = last.readings[-1]
    rows = influx.rows(f"SELECT * FROM bus WHERE device_id = '{last.device_id}' AND time = {r.t}ms")
    assert len(rows) == 1
    row = rows[0]
    assert (row["lat"], row["lon"], row["route_id"], row["site"]) == (
        r.lat,
        r.lon,
        r.route_id,
        last.site,
    )
    assert row["seq"] == last.seq and row["trip_id"] == r.trip_id


def test_redelivery_is_idempotent(settings: Settings, influx: InfluxV1, ingest_factory) -> None:
    ingest_factory()
    pub = Publisher(settings, "pub-dupe")
    msg = make_message(
        "energy_meter", "m-dup", "kita", 3, [{"t": now_ms() - k, "power_w": 5.0} for k in range(10)]
    )
    for _ in range(3):  # the same message delivered three times
        pub.publish(msg)
    pub.flush()
    pub.close()
    wait_until(lambda: influx.rows("SELECT * FROM ingest_stats WHERE messages >= 3"), bool, 20)
    assert stored(influx, "energy_meter") == 10


def test_bad_input_is_dead_lettered_and_good_data_flows(
    settings: Settings, influx: InfluxV1, ingest_factory, tmp_path: Path
) -> None:
    svc = ingest_factory()
    p = settings.topic_prefix
    pub = Publisher(settings, "pub-bad")
    t = now_ms()

    def good(seq: int) -> None:
        m = make_message(
            "energy_meter", "good-1", "kita", seq, [{"t": t - seq, "power_w": float(seq)}]
        )
        pub.publish(m)

    def raw(kind: str, dev: str, body: object) -> tuple[str, bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return f"{p}/v1/telemetry/{kind}/{dev}", data

    def env(dev: str = "m1", kind: str = "energy_meter", **over: object) -> dict[str, object]:
        d: dict[str, object] = {
            "device_id": dev,
            "kind": kind,
            "site": "kita",
            "seq": 0,
            "readings": [{"t": t, "power_w": 1.0}],
        }
        d.update(over)
        return d

    bad = {
        "invalid_json": raw("energy_meter", "m1", b"{oops"),
        "invalid_json-utf8": raw("energy_meter", "m1", b'{"device_id": "\xff"}'),
        "schema": raw("energy_meter", "m1", env(readings=[{"t": t}])),
        "invalid_json-nan": raw(
            "energy_meter",
            "m1",
            b'{"device_id":"m1","kind":"energy_meter","site":"kita","seq":0,"readings":[{"t":1,"power_w":NaN}]}',
        ),
        "schema-inject-site": raw("energy_meter", "m1", env(site="kita,evil=1 power_w=99")),
        "schema-inject-route": raw(
            "bus",
            "b1",
            env(
                "b1",
                "bus",
                readings=[{"t": t, "lat": 1, "lon": 2, "route_id": "R1\nbus,device_id=x lat=0"}],
            ),
        ),
        "topic_mismatch": raw("energy_meter", "m1", env("m2")),
        "time_range": raw(
            "energy_meter", "m1", env(readings=[{"t": t - 40 * 86400_000, "power_w": 1.0}])
        ),
        "time_range-future": raw(
            "energy_meter", "m1", env(readings=[{"t": t + 3_600_000, "power_w": 1.0}])
        ),
        "oversize": raw("energy_meter", "m1", b"{" + b" " * 300_000 + b"}"),
        "unknown_kind": raw("toaster", "m1", env(kind="toaster")),
        "bad_topic": (f"{p}/v1/telemetry/energy_meter/a b", json.dumps(env("a b")).encode()),
        "bad_topic-injection": (
            f"{p}/v1/telemetry/energy_meter/m1,evil=1",
            json.dumps(env("m1,evil=1")).encode(),
        ),
    }
    seq = 0
    for topic, data in bad.values():
        good(seq)
        seq += 1
        pub.publish_raw(topic, data)
    good(seq)
    seq += 1
    pub.flush()
    pub.close()
    assert wait_until(lambda: stored(influx, "energy_meter"), lambda n: n >= seq, 30) == seq
    entries = wait_until(
        lambda: read_dead_letters(svc.cfg.dead_letter_file), lambda e: len(e) >= len(bad), 15
    )
    assert sorted(e["reason"] for e in entries) == sorted(k.split("-")[0] for k in bad)
    for e in entries:
        assert e["detail"] and e["topic"].startswith(p)
        assert "payload" in e or "payload_b64" in e
    assert dict(svc.reject_counts) == {
        r: sum(1 for k in bad if k.split("-")[0] == r) for r in {k.split("-")[0] for k in bad}
    }
    # Nothing the injections tried to add exists.
    tag_keys = {r["tagKey"] for r in influx.rows("SHOW TAG KEYS")}
    assert {"device_id", "site"} <= tag_keys <= {"device_id", "site", "worker", "reason"}
    fields = {r["fieldKey"] for r in influx.rows("SHOW FIELD KEYS FROM energy_meter")}
    assert fields == {"power_w", "seq"}
    assert stored(influx, "bus") == 0
    assert {r["device_id"] for r in influx.rows("SELECT * FROM energy_meter")} == {"good-1"}


def test_db_rejected_points_are_isolated(
    settings: Settings, influx: InfluxV1, ingest_factory
) -> None:
    """A field-type conflict rejects one reading; the rest of the batch is stored."""
    # An operator's earlier data made power_w an integer field in this database.
    influx.write_lines(
        f"energy_meter,device_id=old,site=kita power_w=1i {now_ms() - 5000}".encode()
    )
    svc = ingest_factory(batch_s=1.0)
    pub = Publisher(settings, "pub-conflict")
    t = now_ms()
    for i in range(50):
        pub.publish(
            make_message("wearable", f"w{i}", "kita", 0, [{"t": t, "heart_rate_bpm": 70.0}])
        )
    pub.publish(make_message("energy_meter", "m-conflict", "kita", 0, [{"t": t, "power_w": 3.5}]))
    pub.flush()
    pub.close()
    assert wait_until(lambda: stored(influx, "wearable"), lambda n: n >= 50, 20) == 50
    entries = wait_until(lambda: read_dead_letters(svc.cfg.dead_letter_file), bool, 15)
    assert [e["reason"] for e in entries] == ["db_rejected"]
    assert "field type conflict" in entries[0]["detail"]
    assert entries[0]["line"].startswith("energy_meter,device_id=m-conflict")


def test_agent_status_is_stored(settings: Settings, influx: InfluxV1, ingest_factory) -> None:
    from contract.status import AgentStatus, SourceHealth, encode_status
    from contract.topics import Topics

    ingest_factory()
    pub = Publisher(settings, "pub-status")
    st = AgentStatus(
        "edge-7",
        "online",
        now_ms(),
        outbox_depth=12,
        dropped=3,
        sources={"meter": SourceHealth(healthy=False)},
    )
    pub.publish_raw(Topics(settings.topic_prefix).status("edge-7"), encode_status(st))
    pub.close()
    rows = wait_until(lambda: influx.rows("SELECT * FROM agent_status"), bool, 15)
    assert rows[0]["outbox_depth"] == 12 and rows[0]["dropped"] == 3
    assert rows[0]["sources_unhealthy"] == 1 and rows[0]["online"] is True


def test_ingest_stats_and_database_creation(settings: Settings, ingest_factory) -> None:
    # No `influx` fixture: ingest itself must create the database.
    ingest_factory()
    pub = Publisher(settings, "pub-stats")
    pub.publish(make_message("energy_meter", "m", "kita", 0, [{"t": now_ms(), "power_w": 1.0}]))
    pub.close()
    db = InfluxV1(settings.influx_url, settings.influx_db)
    rows = wait_until(
        lambda: db.rows("SELECT last(readings) AS r FROM ingest_stats"),
        lambda r: bool(r) and r[0]["r"] >= 1,
        20,
    )
    assert rows[0]["r"] == 1
    assert encode_message  # the one serializer is what Publisher uses


def test_unwritable_dead_letter_file_holds_the_message(
    settings: Settings, influx: InfluxV1, ingest_factory, tmp_path: Path
) -> None:
    """A reject that cannot be recorded is not acknowledged: the broker keeps it."""
    client_id = f"held-{settings.topic_prefix}"
    svc = ingest_factory(client_id=client_id, dead_letter_file=Path("/dev/full"))
    pub = Publisher(settings, "pub-held")
    pub.publish_raw(f"{settings.topic_prefix}/v1/telemetry/energy_meter/m1", b"{broken")
    pub.publish(make_message("energy_meter", "m1", "kita", 0, [{"t": now_ms(), "power_w": 1.0}]))
    pub.flush()
    assert wait_until(lambda: stored(influx, "energy_meter"), bool, 20) == 1
    assert svc.counts["rejected"] == 0
    svc.stop()
    # The same session with a writable dead-letter file gets the held message again.
    good = ingest_factory(client_id=client_id, dead_letter_file=tmp_path / "dl.jsonl")
    entries = wait_until(lambda: read_dead_letters(tmp_path / "dl.jsonl"), bool, 20)
    assert [e["reason"] for e in entries] == ["invalid_json"]
    assert good.counts["rejected"] == 1
    pub.close()
