"""Seq accounting: what was sent (device, seq, t per reading) against what InfluxDB holds.

InfluxDB keeps one point per (series, time), so a message stored twice under the same
times leaves no trace; a doubled reading only shows as a point under another time, seq
or tag set. The audit therefore checks every stored point against the ledger:

* ``lost``: a reading that was sent and has no point with its (device, seq, t);
* ``duplicated``: a point beyond the first for a (device, seq, t), or a point whose
  (device, seq) was sent but not at that time, or whose (device, t) was sent under
  another seq -- together: points per (device, seq) must equal readings per message;
* ``unexpected``: a point nobody sent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from contract.influx import InfluxV1, quote_ident
from contract.schema import KINDS, Message

Key = tuple[str, int]  # (device_id, seq)

#: Every settled audit's summary line, printed at the end of the run by conftest.py.
SUMMARIES: list[str] = []


class Ledger:
    """Thread-safe record of every message handed to the pipeline, once per (device, seq).

    Recording the same (device, seq) again (a re-send) must carry the same readings:
    a different body under an old seq would itself be a duplicate-in-waiting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: dict[Key, tuple[int, ...]] = {}

    def add(self, device_id: str, seq: int, times: Iterable[int]) -> None:
        t = tuple(times)
        with self._lock:
            old = self.messages.setdefault((device_id, seq), t)
        if old != t:
            raise AssertionError(f"{device_id} seq {seq} was sent with two different bodies")

    def merge(self, other: Ledger) -> Ledger:
        for (d, s), t in other.messages.items():
            self.add(d, s, t)
        return self

    def readings_set(self) -> set[tuple[str, int, int]]:
        """Every (device_id, seq, t) sent."""
        with self._lock:
            return {(d, s, t) for (d, s), times in self.messages.items() for t in times}

    def add_message(self, msg: Message) -> None:
        self.add(msg.device_id, msg.seq, (r.t for r in msg.readings))

    def add_payload(self, payload: bytes | str) -> None:
        doc = json.loads(payload)
        self.add(doc["device_id"], doc["seq"], (r["t"] for r in doc["readings"]))

    @property
    def readings(self) -> int:
        with self._lock:
            return sum(len(t) for t in self.messages.values())


@dataclass(frozen=True)
class Audit:
    name: str
    sent: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int
    examples: tuple[str, ...]
    missing: frozenset[tuple[str, int, int]] = field(default=frozenset(), repr=False)

    def summary(self) -> str:
        return (
            f"faults: {self.name}: sent={self.sent} stored={self.stored} lost={self.lost} "
            f"duplicated={self.duplicated} unexpected={self.unexpected}"
        )

    @property
    def clean(self) -> bool:
        return self.lost == self.duplicated == self.unexpected == 0


def stored_points(influx: InfluxV1, kinds: Iterable[str] = KINDS) -> list[tuple[str, int, int]]:
    """(device_id, seq, t) of every telemetry point in the database, one per row."""
    out: list[tuple[str, int, int]] = []
    for kind in kinds:
        # Raw rows, not GROUP BY: the same time under two tag sets comes back twice.
        q = f"SELECT seq, device_id FROM {quote_ident(kind)}"  # noqa: S608 (quoted)
        out += [(r["device_id"], int(r["seq"]), int(r["time"])) for r in influx.rows(q)]
    return out


def audit(name: str, ledger: Ledger, points: list[tuple[str, int, int]]) -> Audit:
    expected = ledger.readings_set()
    sent_keys = set(ledger.messages)
    sent_dt = {(d, t) for d, _s, t in expected}
    seen = Counter(points)
    duplicated = unexpected = 0
    examples: list[str] = []
    for (d, s, t), n in seen.items():
        if (d, s, t) in expected:
            duplicated += n - 1
            what = "stored twice"
        elif (d, s) in sent_keys or (d, t) in sent_dt:
            duplicated += n
            what = "stored under another time or seq"
        else:
            unexpected += n
            what = "never sent"
        if n > 1 or (d, s, t) not in expected:
            examples.append(f"{d} seq={s} t={t}: {what}")
    missing = expected - set(seen)
    examples += [f"{d} seq={s} t={t}: lost" for d, s, t in sorted(missing)[:5]]
    return Audit(
        name,
        len(expected),
        len(points),
        len(missing),
        duplicated,
        unexpected,
        tuple(examples[:10]),
        frozenset(missing),
    )


def audit_influx(name: str, ledger: Ledger, influx: InfluxV1) -> Audit:
    return audit(name, ledger, stored_points(influx))


def settle(
    name: str, ledger: Ledger, influx: InfluxV1, timeout: float = 60.0, allow_lost: int = 0
) -> Audit:
    """Wait until nothing is lost (or the timeout), then a little longer so that late
    redeliveries could still show up as doubles; print and return the final audit."""
    deadline = time.monotonic() + timeout
    a = audit_influx(name, ledger, influx)
    while a.lost > allow_lost and time.monotonic() < deadline:
        time.sleep(0.5)
        a = audit_influx(name, ledger, influx)
    time.sleep(1.5)
    a = audit_influx(name, ledger, influx)
    print(a.summary())
    SUMMARIES.append(a.summary())
    return a


def assert_clean(a: Audit) -> None:
    assert a.sent > 0, f"{a.name}: nothing was sent, the test proves nothing"
    assert a.clean, a.summary() + "\n  " + "\n  ".join(a.examples)


# -- edge outbox: a trigger records every committed message --------------------------------

_AUDIT_SQL = """
CREATE TABLE IF NOT EXISTS fault_audit (payload BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS fault_audit_insert AFTER INSERT ON messages
BEGIN INSERT INTO fault_audit(payload) VALUES (NEW.payload); END;
"""


def instrument_outbox(path: Path) -> None:
    """Create the agent's outbox with a trigger that copies every committed message.

    The agent deletes rows on PUBACK; the copy, written in the agent's own transaction,
    is the exact ground truth of what it committed (test instrumentation only).
    """
    from edge.outbox import Outbox

    Outbox(path, max_bytes=1).close()  # the agent's own schema, nothing else
    with sqlite3.connect(path) as db:
        db.executescript(_AUDIT_SQL)


def outbox_ledger(path: Path) -> Ledger:
    """Every message the agent committed to an instrumented outbox."""
    ledger = Ledger()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        for (payload,) in db.execute("SELECT payload FROM fault_audit"):
            ledger.add_payload(bytes(payload))
    finally:
        db.close()
    return ledger
