"""The SQLite outbox: seq continuity, identical re-sends, ack, and the byte bound."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec

from edge.outbox import ROW_OVERHEAD, Batch, Outbox, read_stats


def _batch(device: str, n: int, start: int = 0) -> Batch:
    t0 = int(time.time() * 1000)
    return Batch(
        "energy_meter",
        device,
        "s1",
        [{"t": t0 + start + i, "power_w": 1.0} for i in range(n)],
    )


def test_wal_and_full_sync(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", 10_000_000)
    assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ob.close()


def test_seq_continues_across_reopen_and_payload_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path, 10_000_000)
    rows = ob.commit([_batch("m1", 3), _batch("m2", 2)])
    assert [(r.device_id, r.seq, r.n) for r in rows] == [("m1", 0, 3), ("m2", 0, 2)]
    rows2 = ob.commit([_batch("m1", 1, start=10)])
    assert rows2[0].seq == 1
    ob.close()

    ob = Outbox(path, 10_000_000)  # "after a crash"
    assert ob.depth == 3
    again = ob.fetch(0, 10)
    assert [r.payload for r in again] == [r.payload for r in rows + rows2]
    assert ob.commit([_batch("m1", 1, start=20)])[0].seq == 2
    msg = msgspec.json.decode(again[0].payload)
    assert msg["device_id"] == "m1" and msg["seq"] == 0 and len(msg["readings"]) == 3
    ob.close()


def test_ack_deletes_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", 10_000_000)
    rows = ob.commit([_batch("m1", 3), _batch("m2", 2)])
    assert ob.ack([rows[0].id]) == 3
    assert ob.depth == 1
    assert ob.ack([rows[0].id]) == 0  # a second PUBACK for the same row changes nothing
    c = ob.counters()
    assert c["published_readings"] == 3 and c["published_messages"] == 1
    assert c["committed_readings"] == 5
    assert [r.id for r in ob.fetch(0, 10)] == [rows[1].id]
    ob.close()


def test_full_outbox_drops_oldest_first_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    first = Outbox(path, 10_000_000).commit([_batch("m1", 5)])[0]
    size = len(first.payload) + ROW_OVERHEAD
    ob = Outbox(path, max_bytes=size * 3)  # room for three such messages
    for i in range(1, 6):
        ob.commit([_batch("m1", 5, start=i * 5)])
    assert ob.depth == 3
    assert ob.bytes <= size * 3
    left = ob.fetch(0, 10)
    assert [r.seq for r in left] == [3, 4, 5]  # the three newest survive
    c = ob.counters()
    assert c["dropped_messages"] == 3 and c["dropped_readings"] == 15
    ob.close()
    stats = read_stats(path)  # persisted, readable by `machi edge status`
    assert stats["counters"]["dropped_readings"] == 15
    assert stats["outbox_depth"] == 3 and stats["next_seq"] == {"m1": 6}


def test_oversize_batch_is_split_with_consecutive_seqs(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", 100_000_000)
    t0 = int(time.time() * 1000)
    long_trip = "x" * 128
    readings = [
        {
            "t": t0 + i,
            "lat": 35.0,
            "lon": 139.0,
            "route_id": "r" * 64,
            "trip_id": long_trip,
            "speed_kmh": 12.5,
        }
        for i in range(1000)
    ]
    rows = ob.commit([Batch("bus", "b1", "s1", readings)])
    assert len(rows) > 1
    assert [r.seq for r in rows] == list(range(len(rows)))
    assert sum(r.n for r in rows) == 1000
    assert all(len(r.payload) <= 256 * 1024 for r in rows)
    ob.close()


def test_commit_is_atomic(tmp_path: Path) -> None:
    """A failing batch rolls back the whole transaction: no seq is consumed."""
    ob = Outbox(tmp_path / "o.db", 10_000_000)
    good = _batch("m1", 1)
    bad = Batch("energy_meter", "m2", "s1", [{"t": 1, "power_w": "nan?"}])
    try:
        ob.commit([good, bad])
    except ValueError:
        pass
    else:
        raise AssertionError("an invalid reading must not be stored")
    assert ob.depth == 0
    assert ob.commit([good])[0].seq == 0
    ob.close()
    assert (
        sqlite3.connect(tmp_path / "o.db").execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        == 1
    )


# -- storage confirmations: pending -> sent (PUBACK) -> deleted (confirmation) ---------------


def _due(path: Path) -> dict[int, int | None]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT seq, due_ms FROM messages"))


def test_puback_marks_sent_and_confirmation_deletes(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", 10_000_000)
    rows = ob.commit([_batch("m1", 2), _batch("m1", 3, start=10), _batch("m2", 1)])
    assert [r.seq for r in rows] == [0, 1, 0]
    assert ob.mark_sent([rows[0].id, rows[1].id], timeout_s=60) == 5
    assert ob.depth == 3 and ob.unconfirmed() == 2  # still counted as outbox depth
    assert [r.id for r in ob.fetch(0, 10)] == [rows[2].id]  # only the pending row
    assert ob.mark_sent([rows[0].id], timeout_s=60) == 0  # a second PUBACK: counted once
    # Ingest stored m1 seq 0 only: m1 seq 1 stays, sent, awaiting its confirmation.
    assert ob.confirm("m1", [(0, 0)]) == 2
    assert ob.depth == 2 and ob.unconfirmed() == 1
    assert ob.confirm("m2", [(5, 9)]) == 0  # seqs it never had: nothing happens
    assert ob.confirm("m9", [(0, 0)]) == 0
    # A confirmation may beat the PUBACK (m2 seq 0 was never marked sent).
    assert ob.confirm("m2", [(0, 0)]) == 1
    c = ob.counters()
    assert c["confirmed_messages"] == 2 and c["confirmed_readings"] == 3
    assert c["published_messages"] == 3 and c["published_readings"] == 6
    assert ob.depth == 1 and [r.seq for r in ob.fetch_ids([rows[1].id])] == [1]
    ob.close()


def test_deadlettered_confirmation_deletes_and_counts_apart(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", 10_000_000)
    rows = ob.commit([_batch("m1", 2), _batch("m1", 2, start=10), _batch("m1", 2, start=20)])
    ob.mark_sent([r.id for r in rows], timeout_s=60)
    assert ob.confirm("m1", stored=[(0, 0), (2, 2)], deadlettered=[(1, 1)]) == 4
    assert ob.depth == 0
    c = ob.counters()
    assert c["confirmed_readings"] == 4 and c["ingest_rejected_readings"] == 2
    assert c["ingest_rejected_messages"] == 1
    ob.close()


def test_overdue_rows_are_resent_with_backoff(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path, 10_000_000)
    rows = ob.commit([_batch("m1", 1), _batch("m1", 1, start=5)])
    before = int(time.time() * 1000)
    ob.mark_sent([rows[0].id], timeout_s=1)
    ob.mark_sent([rows[1].id], timeout_s=30)
    assert ob.take_overdue(10) == []  # nothing due yet
    time.sleep(1.1)
    again = ob.take_overdue(10)
    assert [(r.id, r.payload) for r in again] == [(rows[0].id, rows[0].payload)]  # same bytes
    assert _due(path)[0] is None and ob.unconfirmed() == 1  # pending again while re-sent
    assert ob.take_overdue(10) == []  # not handed out twice
    # Its second PUBACK doubles the wait (1 s -> 2 s), up to MAX_BACKOFF times the timeout.
    ob.mark_sent([rows[0].id], timeout_s=1)
    due = _due(path)[0]
    assert due is not None and due - before >= 2000 + 1100
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET sends = 40 WHERE seq = 0")
    now = int(time.time() * 1000)
    ob.mark_sent([rows[0].id], timeout_s=1)
    due = _due(path)[0]
    assert due is not None and now + 16_000 <= due <= now + 17_000  # capped at 16 x
    assert ob.counters()["resent_messages"] == 1
    assert ob.counters()["published_messages"] == 2  # re-sends are not published twice
    ob.close()


def test_unconfirmed_rows_survive_a_restart_and_keep_their_due_time(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path, 10_000_000)
    rows = ob.commit([_batch("m1", 1), _batch("m1", 1, start=5), _batch("m1", 1, start=9)])
    ob.mark_sent([rows[0].id, rows[1].id], timeout_s=1)
    ob.close()  # "crash": nothing else happens

    ob = Outbox(path, 10_000_000)
    assert ob.depth == 3 and ob.unconfirmed() == 2
    assert [r.seq for r in ob.fetch(0, 10)] == [2]  # sent rows are not re-sent at once
    assert read_stats(path)["unconfirmed"] == 2
    time.sleep(1.1)
    assert [r.seq for r in ob.take_overdue(10)] == [0, 1]  # ... but once overdue
    assert ob.devices() == ["m1"]
    ob.close()


def test_drop_oldest_counts_unconfirmed_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    first = Outbox(path, 10_000_000).commit([_batch("m1", 5)])[0]
    size = len(first.payload) + ROW_OVERHEAD
    ob = Outbox(path, max_bytes=size * 2)
    ob.mark_sent([first.id], timeout_s=60)  # sent, unconfirmed: still the oldest
    ob.commit([_batch("m1", 5, start=5)])
    ob.commit([_batch("m1", 5, start=10)])
    assert ob.depth == 2 and ob.unconfirmed() == 0  # the sent row was dropped first
    # Acknowledged by the broker, so most likely stored: not reported as certain loss.
    assert ob.counters()["dropped_unconfirmed_readings"] == 5
    assert ob.counters().get("dropped_readings", 0) == 0
    ob.close()


def test_old_outbox_is_migrated(tmp_path: Path) -> None:
    """An outbox written before confirmations existed opens, and its rows are pending."""
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT "
            "NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL, size INTEGER "
            "NOT NULL, created_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
            "INSERT INTO messages(device_id, kind, seq, n, size, created_ms, payload) "
            "VALUES ('m1', 'energy_meter', 0, 1, 70, 0, x'7b7d');"
        )
    ob = Outbox(path, 10_000_000)
    assert ob.depth == 1 and ob.unconfirmed() == 0
    assert [r.seq for r in ob.fetch(0, 10)] == [0]
    ob.mark_sent([1], timeout_s=60)
    assert ob.unconfirmed() == 1
    ob.close()
