"""The alert store (SQLAlchemy; SQLite by default, PostgreSQL for several hosts).

Three tables:

* ``alerts``: one row per episode, keyed by an ``alert_id`` derived from
  (device_id, type, episode_ms), so a redelivered message or a second instance lands on
  the same row. ``state`` is open -> acked -> resolved; ``tier`` is the tier notified
  last (1-based, 0 = no route); ``next_due_ms`` is when the next escalation or reminder
  is due.
* ``notifications``: one row per (alert, tier, recipient, attempt_kind), UNIQUE, written
  in the same transaction as the step that calls for it. ``status`` is ``intent`` (to
  send, or being sent), ``sent``, ``failed`` (retry at ``next_try_ms``) or ``dropped``
  (the alert was acknowledged or resolved first, or the recipient left the rules).
* ``lease``: the leader lease (holder, expiry, epoch) of ``machi alerts run``.

Every write transaction starts with its write statement, so SQLite takes the write lock
first and concurrent writers wait (busy timeout) instead of failing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from contract.rules import DEVICE_ALERT_TYPES
from contract.sql import open_engine

__all__ = [
    "ALERT_ID_RE",
    "AlertStore",
    "NOTE_MAX",
    "Step",
    "alert_id_of",
]

ALERT_ID_RE = re.compile(r"^[0-9a-f]{24}\Z")
NOTE_MAX = 500
LEADER = "leader"

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(24), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("site", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("priority", String(8), nullable=False),
    Column("value", Float),
    Column("episode_ms", BigInteger, nullable=False),
    Column("opened_ms", BigInteger, nullable=False),
    Column("state", String(10), nullable=False),
    Column("route", Integer),
    Column("tier", Integer, nullable=False),
    Column("reminders", Integer, nullable=False, default=0),
    Column("next_due_ms", BigInteger, index=True),
    Column("closed_ms", BigInteger),
    Column("acked_by", String(64)),
    Column("acked_ms", BigInteger),
    Column("note", Text),
    Column("resolved_by", String(64)),
    Column("resolved_ms", BigInteger),
    Column("dirty", Boolean, nullable=False, default=True),
    Column("updated_ms", BigInteger, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(24), nullable=False, index=True),
    Column("tier", Integer, nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("channel", String(300), nullable=False),
    Column("attempt_kind", String(16), nullable=False),
    Column("status", String(8), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try_ms", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger),
    UniqueConstraint("alert_id", "tier", "recipient", "attempt_kind", name="uq_notification"),
)

lease = Table(
    "lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("epoch", Integer, nullable=False),
)


def alert_id_of(device_id: str, alert_type: str, episode_ms: int) -> str:
    """Deterministic id: every instance and every redelivery derive the same one."""
    return hashlib.sha256(f"{device_id}\n{alert_type}\n{episode_ms}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Recipient:
    key: str
    channel: str  # display form, no credentials


@dataclass(frozen=True)
class Step:
    """An escalation or reminder the leader has just recorded."""

    alert_id: str
    tier: int
    attempt_kind: str


class AlertStore:
    """All reads and writes of alert state (used by ``machi alerts run`` and the API)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    @classmethod
    def open(cls, url: str, option: str = "MACHI_ALERTS_DB") -> AlertStore:
        return cls(open_engine(url, option))

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: Table) -> Any:
        d = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return d.insert(table)

    # -- alerts from the stream ---------------------------------------------------------

    def record(
        self,
        event: dict[str, Any],
        *,
        route: int | None,
        priority: str,
        ack_within_s: float | None,
        recipients: Sequence[Recipient],
        now_ms: int,
    ) -> str:
        """Store one open/closed message; returns what happened (for logs and metrics).

        Opening inserts the alert and its first tier's intents in one transaction;
        a closed message for a device problem resolves it (the condition cleared).
        """
        aid = alert_id_of(event["device_id"], event["type"], int(event["episode_ms"]))
        is_device = event["type"] in DEVICE_ALERT_TYPES
        with self.engine.begin() as c:
            if event["state"] == "closed":
                changed = self._close(c, aid, is_device, now_ms)
                if changed is not None:
                    return changed
                if is_device:
                    # The open was never seen and the condition is over: keep the record.
                    self._insert_alert(c, aid, event, None, priority, None, now_ms, "resolved")
                    return "closed-unseen"
                # A care episode whose opening was missed still needs a person.
            tier_due = None if ack_within_s is None else now_ms + int(ack_within_s * 1000)
            if not self._insert_alert(c, aid, event, route, priority, tier_due, now_ms, "open"):
                return "duplicate"
            if event["state"] == "closed":
                c.execute(update(alerts).where(alerts.c.alert_id == aid).values(closed_ms=now_ms))
            self._intents(c, aid, 1, "notify", recipients, now_ms)
            return "opened" if route is not None else "unrouted"

    def _insert_alert(
        self,
        c: Connection,
        aid: str,
        event: dict[str, Any],
        route: int | None,
        priority: str,
        next_due_ms: int | None,
        now_ms: int,
        state: str,
    ) -> bool:
        row = {
            "alert_id": aid,
            "device_id": event["device_id"],
            "site": event["site"],
            "type": event["type"],
            "priority": priority,
            "value": event.get("value"),
            "episode_ms": int(event["episode_ms"]),
            "opened_ms": now_ms,
            "state": state,
            "route": route,
            "tier": 1 if route is not None and state == "open" else 0,
            "reminders": 0,
            "next_due_ms": next_due_ms if state == "open" else None,
            "dirty": True,
            "updated_ms": now_ms,
        }
        if state == "resolved":
            row.update(closed_ms=now_ms, resolved_by="condition cleared", resolved_ms=now_ms)
        # RETURNING tells "inserted" from "was there" on both dialects (rowcount does not).
        res = c.execute(
            self._insert(alerts).values(row).on_conflict_do_nothing().returning(alerts.c.alert_id)
        )
        return res.first() is not None

    def _close(self, c: Connection, aid: str, is_device: bool, now_ms: int) -> str | None:
        values: dict[str, Any] = {"closed_ms": func.coalesce(alerts.c.closed_ms, now_ms)}
        if is_device:
            values.update(
                state="resolved",
                resolved_by=func.coalesce(alerts.c.resolved_by, "condition cleared"),
                resolved_ms=func.coalesce(alerts.c.resolved_ms, now_ms),
                next_due_ms=None,
                dirty=True,
                updated_ms=now_ms,
            )
        res = c.execute(update(alerts).where(alerts.c.alert_id == aid).values(values))
        if not res.rowcount:
            return None
        if is_device:
            self._drop_outstanding(c, aid, "condition cleared")
            return "resolved"
        return "closed"

    def _intents(
        self,
        c: Connection,
        aid: str,
        tier: int,
        kind: str,
        recipients: Iterable[Recipient],
        now_ms: int,
    ) -> None:
        rows = [
            {
                "alert_id": aid,
                "tier": tier,
                "recipient": r.key,
                "channel": r.channel[:300],
                "attempt_kind": kind,
                "status": "intent",
                "attempts": 0,
                "next_try_ms": now_ms,
                "created_ms": now_ms,
            }
            for r in recipients
        ]
        if rows:
            c.execute(self._insert(notifications).values(rows).on_conflict_do_nothing())

    def _drop_outstanding(self, c: Connection, aid: str, why: str) -> None:
        # Rows already handed to a channel (intent with attempts > 0) keep their state:
        # the sender records the outcome it gets.
        c.execute(
            update(notifications)
            .where(
                notifications.c.alert_id == aid,
                or_(
                    notifications.c.status == "failed",
                    and_(notifications.c.status == "intent", notifications.c.attempts == 0),
                ),
            )
            .values(status="dropped", last_error=why)
        )

    # -- people (the API) ---------------------------------------------------------------

    def ack(self, aid: str, who: str, note: str | None, now_ms: int) -> dict[str, Any] | None:
        """Acknowledge an open alert (stops escalation); None if the id is unknown."""
        with self.engine.begin() as c:
            res = c.execute(
                update(alerts)
                .where(alerts.c.alert_id == aid, alerts.c.state == "open")
                .values(
                    state="acked",
                    acked_by=who,
                    acked_ms=now_ms,
                    note=note,
                    next_due_ms=None,
                    dirty=True,
                    updated_ms=now_ms,
                )
            )
            if res.rowcount:
                self._drop_outstanding(c, aid, "acknowledged")
        return self.get(aid)

    def resolve(self, aid: str, who: str, note: str | None, now_ms: int) -> dict[str, Any] | None:
        """Close an alert (open or acked); resolving also acknowledges."""
        with self.engine.begin() as c:
            res = c.execute(
                update(alerts)
                .where(alerts.c.alert_id == aid, alerts.c.state != "resolved")
                .values(
                    state="resolved",
                    acked_by=func.coalesce(alerts.c.acked_by, who),
                    acked_ms=func.coalesce(alerts.c.acked_ms, now_ms),
                    note=note if note is not None else alerts.c.note,
                    resolved_by=who,
                    resolved_ms=now_ms,
                    next_due_ms=None,
                    dirty=True,
                    updated_ms=now_ms,
                )
            )
            if res.rowcount:
                self._drop_outstanding(c, aid, "resolved")
        return self.get(aid)

    def get(self, aid: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(alerts).where(alerts.c.alert_id == aid)).mappings().first()
        return dict(row) if row else None

    def unresolved(self, site: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Open and acknowledged alerts, newest first."""
        q = select(alerts).where(alerts.c.state != "resolved")
        if site is not None:
            q = q.where(alerts.c.site == site)
        q = q.order_by(alerts.c.opened_ms.desc()).limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def notifications_of(self, aid: str) -> list[dict[str, Any]]:
        q = (
            select(notifications)
            .where(notifications.c.alert_id == aid)
            .order_by(notifications.c.id)
        )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    # -- the leader ---------------------------------------------------------------------

    def acquire(self, holder: str, ttl_ms: int, now_ms: int) -> int | None:
        """Take or renew the leader lease; the epoch when this holder leads, else None.

        One atomic UPDATE: it succeeds when the lease is ours or has expired.
        """
        with self.engine.begin() as c:
            res = c.execute(
                update(lease)
                .where(
                    lease.c.name == LEADER,
                    or_(lease.c.holder == holder, lease.c.expires_ms < now_ms),
                )
                .values(
                    epoch=case((lease.c.holder == holder, lease.c.epoch), else_=lease.c.epoch + 1),
                    holder=holder,
                    expires_ms=now_ms + ttl_ms,
                )
            )
            if not res.rowcount:
                res = c.execute(
                    self._insert(lease)
                    .values(name=LEADER, holder=holder, expires_ms=now_ms + ttl_ms, epoch=1)
                    .on_conflict_do_nothing()
                    .returning(lease.c.epoch)
                )
                if res.first() is None:
                    return None
            epoch = c.execute(select(lease.c.epoch).where(lease.c.name == LEADER)).scalar_one()
        return int(epoch)

    def release(self, holder: str) -> None:
        """Give the lease up on a clean stop, so the standby takes over at once."""
        with self.engine.begin() as c:
            c.execute(
                update(lease)
                .where(lease.c.name == LEADER, lease.c.holder == holder)
                .values(expires_ms=0)
            )

    def leader(self) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(lease).where(lease.c.name == LEADER)).mappings().first()
        return dict(row) if row else None

    def _leads(self, holder: str, now_ms: int) -> Any:
        return exists().where(
            lease.c.name == LEADER, lease.c.holder == holder, lease.c.expires_ms > now_ms
        )

    def due(self, now_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        q = (
            select(alerts)
            .where(alerts.c.state == "open", alerts.c.next_due_ms <= now_ms)
            .order_by(alerts.c.next_due_ms)
            .limit(limit)
        )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def step(
        self,
        row: dict[str, Any],
        tier: int,
        kind: str,
        next_due_ms: int,
        recipients: Sequence[Recipient],
        holder: str,
        now_ms: int,
    ) -> Step | None:
        """Record one escalation (or reminder) and its intents, if still due and still
        leading: the UPDATE is conditional on the row being unchanged and on the lease."""
        reminders = row["reminders"] + (1 if kind.startswith("remind") else 0)
        with self.engine.begin() as c:
            res = c.execute(
                update(alerts)
                .where(
                    alerts.c.alert_id == row["alert_id"],
                    alerts.c.state == "open",
                    alerts.c.tier == row["tier"],
                    alerts.c.reminders == row["reminders"],
                    self._leads(holder, now_ms),
                )
                .values(
                    tier=tier,
                    reminders=reminders,
                    next_due_ms=next_due_ms,
                    dirty=True,
                    updated_ms=now_ms,
                )
            )
            if not res.rowcount:
                return None
            self._intents(c, row["alert_id"], tier, kind, recipients, now_ms)
        return Step(row["alert_id"], tier, kind)

    def pending(self, now_ms: int, limit: int = 200) -> list[dict[str, Any]]:
        """Notifications to (re)try now, with their alert, most urgent first."""
        q = (
            select(notifications, alerts.c.state.label("alert_state"))
            .join(alerts, alerts.c.alert_id == notifications.c.alert_id)
            .where(
                notifications.c.status.in_(("intent", "failed")),
                notifications.c.next_try_ms <= now_ms,
            )
            .order_by(notifications.c.next_try_ms, notifications.c.id)
            .limit(limit)
        )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def in_flight(self) -> list[int]:
        """Intents handed to a channel whose outcome is not recorded; read by a new
        leader, the only notifications that can be repeated (see docs/alerts.md)."""
        q = select(notifications.c.id).where(
            notifications.c.status == "intent", notifications.c.attempts > 0
        )
        with self.engine.connect() as c:
            return [int(x) for x in c.execute(q).scalars()]

    def claim(self, nid: int, attempts: int, holder: str, now_ms: int) -> bool:
        """Count an attempt before sending; False when another leader got there first,
        the row moved on since it was read (sent, or waiting for its retry time), or this
        process no longer leads."""
        with self.engine.begin() as c:
            res = c.execute(
                update(notifications)
                .where(
                    notifications.c.id == nid,
                    notifications.c.attempts == attempts,
                    notifications.c.status.in_(("intent", "failed")),
                    notifications.c.next_try_ms <= now_ms,
                    self._leads(holder, now_ms),
                )
                .values(status="intent", attempts=attempts + 1)
            )
            return bool(res.rowcount)

    def sent(self, nid: int, now_ms: int) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(notifications)
                .where(notifications.c.id == nid)
                .values(status="sent", sent_ms=now_ms, last_error=None)
            )

    def failed(self, nid: int, error: str, retry_at_ms: int) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(notifications)
                .where(notifications.c.id == nid, notifications.c.status == "intent")
                .values(status="failed", last_error=error[:500], next_try_ms=retry_at_ms)
            )

    def drop(self, nid: int, why: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(notifications)
                .where(notifications.c.id == nid)
                .values(status="dropped", last_error=why)
            )

    def dirty(self, limit: int = 500) -> list[dict[str, Any]]:
        q = select(alerts).where(alerts.c.dirty.is_(True)).limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def reported(self, rows: Iterable[dict[str, Any]]) -> None:
        """Clear the dirty flag of rows whose point was written (unless changed since)."""
        with self.engine.begin() as c:
            for r in rows:
                c.execute(
                    update(alerts)
                    .where(
                        alerts.c.alert_id == r["alert_id"],
                        alerts.c.updated_ms == r["updated_ms"],
                    )
                    .values(dirty=False)
                )
