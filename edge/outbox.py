"""The durable outbox: contract messages in SQLite until they are known to be stored.

A row's life: *pending* (``due_ms`` NULL: not yet acknowledged by the broker) ->
*sent* (PUBACK received: ``due_ms`` is when to re-publish it if ingest never confirms
it stored) -> deleted by a storage confirmation (``contract.confirm``). Without
confirmations (``require_confirmation = false``) a row is deleted at its PUBACK.

A message is built once (device_id, seq, readings with their ``t``) and stored as its
final payload, so a re-send after a crash is byte-for-byte the same message and ingest
stores it idempotently. ``seq`` per device lives in the same database and advances in
the same transaction as the insert, so it keeps counting up by one across restarts.

WAL mode with ``synchronous=FULL``: every commit is fsynced before it returns, so a
committed reading survives a power cut (``normal`` only survives process crashes; it is
offered for SD cards where fsync latency matters more than the last second of data).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.schema import MAX_PAYLOAD_BYTES, encode_message, make_message

# Per-row bookkeeping (row header, index entry) counted against max_bytes on top of the
# payload, so many tiny messages cannot overshoot the bound by much.
ROW_OVERHEAD = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sends INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
# After the columns exist (older outboxes are migrated first, see _migrate).
_INDEXES = """
CREATE INDEX IF NOT EXISTS messages_due ON messages(due_ms) WHERE due_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_device_seq ON messages(device_id, seq);
"""
#: A sent row not confirmed is re-published after confirm_timeout_s, then after twice
#: that, and so on up to this multiple: a long ingest outage must not make every agent
#: re-queue its whole backlog on the broker every couple of minutes.
MAX_BACKOFF = 16


@dataclass(frozen=True)
class Batch:
    """Readings of one device, already validated, to become one (or more) messages."""

    kind: str
    device_id: str
    site: str
    readings: list[dict[str, Any]]


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    device_id: str
    seq: int
    n: int
    payload: bytes


class OutboxError(RuntimeError):
    """The outbox database cannot be used (disk full, corrupt file, wrong permissions)."""


def _encode_split(batch: Batch, seq: int) -> list[tuple[int, int, bytes]]:
    """``(seq, n, payload)`` per message; halves batches whose payload is over the limit."""
    msg = make_message(batch.kind, batch.device_id, batch.site, seq, batch.readings)
    payload = encode_message(msg)
    if len(payload) <= MAX_PAYLOAD_BYTES or len(batch.readings) == 1:
        return [(seq, len(batch.readings), payload)]
    half = len(batch.readings) // 2
    first = _encode_split(
        Batch(batch.kind, batch.device_id, batch.site, batch.readings[:half]), seq
    )
    nxt = first[-1][0] + 1
    rest = Batch(batch.kind, batch.device_id, batch.site, batch.readings[half:])
    return first + _encode_split(rest, nxt)


class Outbox:
    """Thread-safe (one lock) access to the outbox database."""

    def __init__(self, path: Path, max_bytes: int, synchronous: str = "full") -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            self._migrate()
            self._db.executescript(_INDEXES)
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages")
            self._depth, self._bytes = row.fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(
                f"cannot open the outbox {self.path}: {exc}; check the directory exists, is "
                "writable by the agent's user and the disk is not full"
            ) from None

    def _migrate(self) -> None:
        """Add the confirmation columns to an outbox written by an older agent."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        if "sends" not in cols:
            self._db.execute("ALTER TABLE messages ADD COLUMN sends INTEGER NOT NULL DEFAULT 0")
        if "due_ms" not in cols:
            self._db.execute("ALTER TABLE messages ADD COLUMN due_ms INTEGER")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------

    def commit(self, batches: Iterable[Batch], counters: dict[str, int] | None = None) -> list[Row]:
        """Store batches as messages (and bump ``counters``) in ONE transaction.

        Returns the stored rows. Enforces ``max_bytes`` by dropping the oldest messages.
        """
        now_ms = int(time.time() * 1000)
        out: list[Row] = []
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                added_bytes = 0
                for b in batches:
                    cur = db.execute(
                        "SELECT next_seq FROM devices WHERE device_id=?", (b.device_id,)
                    )
                    found = cur.fetchone()
                    seq = found[0] if found else 0
                    for mseq, n, payload in _encode_split(b, seq):
                        size = len(payload) + ROW_OVERHEAD
                        cur = db.execute(
                            "INSERT INTO messages(device_id, kind, seq, n, size, created_ms,"
                            " payload) VALUES (?,?,?,?,?,?,?)",
                            (b.device_id, b.kind, mseq, n, size, now_ms, payload),
                        )
                        rid = cur.lastrowid
                        assert rid is not None
                        out.append(Row(rid, b.kind, b.device_id, mseq, n, payload))
                        added_bytes += size
                        seq = mseq + 1
                    db.execute(
                        "INSERT INTO devices(device_id, next_seq) VALUES (?, ?) "
                        "ON CONFLICT(device_id) DO UPDATE SET next_seq=excluded.next_seq",
                        (b.device_id, seq),
                    )
                bump = dict(counters or {})
                if out:
                    bump["committed_messages"] = bump.get("committed_messages", 0) + len(out)
                    bump["committed_readings"] = bump.get("committed_readings", 0) + sum(
                        r.n for r in out
                    )
                depth, total = self._depth + len(out), self._bytes + added_bytes
                dropped_ids: set[int] = set()
                if total > self.max_bytes:
                    depth, total, dropped_ids = self._drop_oldest(depth, total, bump)
                self._bump(bump)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            self._depth, self._bytes = depth, total
        return [r for r in out if r.id not in dropped_ids]

    def _drop_oldest(
        self, depth: int, total: int, bump: dict[str, int]
    ) -> tuple[int, int, set[int]]:
        """Delete the oldest messages until the outbox fits ``max_bytes`` (in a transaction).

        Rows the broker never acknowledged are certainly lost: ``dropped_*``. Rows it did
        acknowledge but whose storage was not confirmed yet were most likely stored, so
        they are counted apart (``dropped_unconfirmed_*``) rather than reported as loss.
        """
        dropped: set[int] = set()
        while total > self.max_bytes:
            rows = self._db.execute(
                "SELECT id, size, n, sends FROM messages ORDER BY id LIMIT 200"
            ).fetchall()
            if not rows:
                break
            cut = []
            for rid, size, n, sends in rows:
                cut.append(rid)
                total -= size
                depth -= 1
                kind = "dropped_unconfirmed" if sends else "dropped"
                bump[f"{kind}_messages"] = bump.get(f"{kind}_messages", 0) + 1
                bump[f"{kind}_readings"] = bump.get(f"{kind}_readings", 0) + n
                if total <= self.max_bytes:
                    break
            self._db.execute("DELETE FROM messages WHERE id <= ?", (cut[-1],))
            dropped.update(cut)
        return depth, total, dropped

    def _bump(self, counters: dict[str, int]) -> None:
        for name, inc in counters.items():
            if inc:
                self._db.execute(
                    "INSERT INTO counters(name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (name, inc),
                )

    def _tx(self, work: Any) -> Any:
        """Run ``work(db)`` in one immediate transaction (the caller holds the lock)."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            out = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return out

    def ack(self, ids: Iterable[int]) -> int:
        """Delete messages the broker acknowledged; returns how many readings they held.

        For deployments without storage confirmations (``require_confirmation = false``).
        """
        ids = list(ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))

        def work(db: sqlite3.Connection) -> tuple[int, int, int]:
            msgs, readings, size = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(n), 0), COALESCE(SUM(size), 0) "  # noqa: S608
                f"FROM messages WHERE id IN ({marks})",
                ids,
            ).fetchone()
            db.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids)  # noqa: S608
            self._bump({"published_messages": msgs, "published_readings": readings})
            return msgs, readings, size

        with self._lock:
            msgs, readings, size = self._tx(work)
            self._depth -= msgs
            self._bytes -= size
        return int(readings)

    def mark_sent(self, ids: Iterable[int], timeout_s: float) -> int:
        """Record PUBACKs: the rows wait for a storage confirmation until their due time.

        The wait doubles with every PUBACK of the same row (up to ``MAX_BACKOFF``).
        Returns the readings acknowledged for the first time (the ``published`` count).
        """
        ids = list(ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        now_ms = int(time.time() * 1000)
        step_ms = int(timeout_s * 1000)

        def work(db: sqlite3.Connection) -> int:
            msgs, readings = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM messages "  # noqa: S608
                f"WHERE sends = 0 AND id IN ({marks})",
                ids,
            ).fetchone()
            db.execute(
                "UPDATE messages SET sends = sends + 1, due_ms = ? + ? * "  # noqa: S608
                f"MIN(1 << sends, {MAX_BACKOFF}) WHERE id IN ({marks})",
                (now_ms, step_ms, *ids),
            )
            self._bump({"published_messages": msgs, "published_readings": readings})
            return int(readings)

        with self._lock:
            return int(self._tx(work))

    def confirm(
        self,
        device_id: str,
        stored: Iterable[tuple[int, int]],
        deadlettered: Iterable[tuple[int, int]] = (),
    ) -> int:
        """Delete the rows ingest confirmed (seq ranges, inclusive); returns their readings.

        Stored and dead-lettered rows are counted apart (``confirmed_*`` and
        ``ingest_rejected_*``). A confirmation may beat its PUBACK: such a row also
        counts as published.
        """
        groups = (("confirmed", list(stored)), ("ingest_rejected", list(deadlettered)))
        if not any(ranges for _name, ranges in groups):
            return 0

        def work(db: sqlite3.Connection) -> tuple[int, int, int]:
            msgs_all = size_all = readings_all = 0
            bump: dict[str, int] = {}
            for name, ranges in groups:
                for first, last in ranges:
                    where = "device_id = ? AND seq BETWEEN ? AND ?"
                    args = (device_id, first, last)
                    msgs, readings, size, unsent_m, unsent_r = db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(n), 0), COALESCE(SUM(size), 0), "  # noqa: S608
                        "COALESCE(SUM(sends = 0), 0), COALESCE(SUM(CASE WHEN sends = 0 "
                        f"THEN n ELSE 0 END), 0) FROM messages WHERE {where}",
                        args,
                    ).fetchone()
                    if not msgs:
                        continue
                    db.execute(f"DELETE FROM messages WHERE {where}", args)  # noqa: S608
                    for key, inc in (
                        (f"{name}_messages", msgs),
                        (f"{name}_readings", readings),
                        ("published_messages", unsent_m),
                        ("published_readings", unsent_r),
                    ):
                        bump[key] = bump.get(key, 0) + inc
                    msgs_all += msgs
                    size_all += size
                    if name == "confirmed":
                        readings_all += readings
            self._bump(bump)
            return msgs_all, size_all, readings_all

        with self._lock:
            msgs, size, readings = self._tx(work)
            self._depth -= msgs
            self._bytes -= size
        return int(readings)

    def take_overdue(self, limit: int) -> list[Row]:
        """Sent rows whose confirmation is overdue, returned to *pending* for a re-send."""
        now_ms = int(time.time() * 1000)

        def work(db: sqlite3.Connection) -> list[Row]:
            rows = db.execute(
                "SELECT id, kind, device_id, seq, n, payload FROM messages "
                "WHERE due_ms IS NOT NULL AND due_ms <= ? ORDER BY due_ms, id LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            if rows:
                ids = [r[0] for r in rows]
                db.execute(
                    "UPDATE messages SET due_ms = NULL "  # noqa: S608
                    f"WHERE id IN ({','.join('?' * len(ids))})",
                    ids,
                )
                self._bump({"resent_messages": len(rows)})
            return [Row(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

        with self._lock:
            return list(self._tx(work))

    # -- reading ---------------------------------------------------------------------

    def fetch(self, after_id: int, limit: int) -> list[Row]:
        """The oldest ``limit`` pending (not yet acknowledged) messages above ``after_id``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, device_id, seq, n, payload FROM messages WHERE id > ? "
                "AND due_ms IS NULL ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Row(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def fetch_ids(self, ids: Iterable[int]) -> list[Row]:
        ids = list(ids)
        if not ids:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, device_id, seq, n, payload FROM messages "  # noqa: S608
                f"WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id",
                ids,
            ).fetchall()
        return [Row(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    @property
    def depth(self) -> int:
        return int(self._depth)

    @property
    def bytes(self) -> int:
        return int(self._bytes)

    def unconfirmed(self) -> int:
        """Rows the broker acknowledged that wait for a storage confirmation."""
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM messages WHERE due_ms IS NOT NULL"
                ).fetchone()[0]
            )

    def devices(self) -> list[str]:
        """Every device that ever had a message in this outbox."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT device_id FROM devices")]

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def next_seqs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT device_id, next_seq FROM devices").fetchall())


def read_stats(path: Path) -> dict[str, Any]:
    """Outbox figures from a (possibly running) agent's database, opened read-only."""
    if not Path(path).exists():
        raise OutboxError(f"outbox {path} does not exist; has the agent run with this config?")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        depth, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        oldest = db.execute("SELECT MIN(created_ms) FROM messages").fetchone()[0]
        cols = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
        unconfirmed = (
            db.execute("SELECT COUNT(*) FROM messages WHERE due_ms IS NOT NULL").fetchone()[0]
            if "due_ms" in cols
            else 0
        )
        return {
            "outbox_depth": depth,
            "outbox_bytes": size,
            "unconfirmed": unconfirmed,
            "oldest_ms": oldest,
            "counters": dict(db.execute("SELECT name, value FROM counters").fetchall()),
            "next_seq": dict(db.execute("SELECT device_id, next_seq FROM devices").fetchall()),
        }
    finally:
        db.close()
