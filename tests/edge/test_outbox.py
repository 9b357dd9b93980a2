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
