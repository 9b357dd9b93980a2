"""Residents' feedback: a durable store with moderation (SQLite or PostgreSQL).

Opened through :func:`contract.sql.open_engine`, so ``sqlite:///...`` (the default) and
``postgresql+psycopg://...`` run the same SQLAlchemy Core statements. A submission is
``pending`` until an operator publishes or rejects it; only ``published`` items (and the
city's replies to them) are ever read for the page. Spam caught by the honeypot or the
fill-time check, and text that fails validation, is kept with status ``refused`` and its
reason, for inspection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from contract.sql import open_engine

__all__ = ["MAX_REPLY", "MAX_TEXT", "STATUSES", "FeedbackStore", "Item"]

MAX_TEXT: Final = 1000
MAX_REPLY: Final = 2000
STATUSES: Final = ("pending", "published", "rejected", "refused")
Status = Literal["pending", "published", "rejected", "refused"]

metadata = MetaData()
feedback = Table(
    "portal_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("theme", String(16), nullable=False),
    Column("district", String(64), nullable=True),
    Column("category", String(16), nullable=True),
    Column("lang", String(2), nullable=False),
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("reason", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("moderated_at", DateTime(timezone=True), nullable=True),
    Column("moderated_by", String(32), nullable=True),
    Column("reply", Text, nullable=True),
    Column("replied_at", DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class Item:
    id: int
    theme: str
    district: str | None
    category: str | None
    lang: str
    text: str
    status: str
    reason: str | None
    created_at: datetime
    moderated_at: datetime | None
    moderated_by: str | None
    reply: str | None
    replied_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("created_at", "moderated_at", "replied_at"):
            if d[k] is not None:
                d[k] = _utc(d[k]).isoformat().replace("+00:00", "Z")
        return d


def _utc(t: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class FeedbackStore:
    """Submissions and their moderation; ``version`` moves on every change."""

    def __init__(self, url: str, option: str = "MACHI_PORTAL_FEEDBACK_DB") -> None:
        self.engine = open_engine(url, option)
        metadata.create_all(self.engine)
        self._lock = threading.Lock()
        self.version = 0

    def close(self) -> None:
        self.engine.dispose()

    def add(
        self,
        theme: str,
        district: str | None,
        category: str | None,
        lang: str,
        text: str,
        status: Status = "pending",
        reason: str | None = None,
    ) -> int:
        """Store a submission durably (committed before this returns); its id."""
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(feedback)
                .values(
                    theme=theme,
                    district=district,
                    category=category,
                    lang=lang,
                    text=text,
                    status=status,
                    reason=reason,
                    created_at=datetime.now(UTC),
                )
                .returning(feedback.c.id)
            ).scalar_one()
        self._bump()
        return int(new_id)

    def get(self, item_id: int) -> Item | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(feedback).where(feedback.c.id == item_id)).first()
        return None if row is None else _item(row._mapping)

    def items(
        self, status: str | None = None, theme: str | None = None, limit: int = 100
    ) -> list[Item]:
        q = select(feedback).order_by(feedback.c.id.desc()).limit(limit)
        if status is not None:
            q = q.where(feedback.c.status == status)
        if theme is not None:
            q = q.where(feedback.c.theme == theme)
        with self.engine.connect() as conn:
            return [_item(r._mapping) for r in conn.execute(q)]

    def published(self, theme: str, district: str | None, limit: int = 20) -> list[Item]:
        """What the page may show: published items of a theme (and district, if given)."""
        q = (
            select(feedback)
            .where(feedback.c.status == "published", feedback.c.theme == theme)
            .order_by(feedback.c.moderated_at.desc(), feedback.c.id.desc())
            .limit(limit)
        )
        if district is not None:
            q = q.where(feedback.c.district == district)
        with self.engine.connect() as conn:
            return [_item(r._mapping) for r in conn.execute(q)]

    def moderate(self, item_id: int, status: Status, by: str) -> Item | None:
        """Publish or reject an item; None if there is no such item."""
        return self._update(item_id, status=status, moderated_at=datetime.now(UTC), moderated_by=by)

    def answer(self, item_id: int, reply: str, by: str) -> Item | None:
        """Set the city's reply (shown with the item once it is published)."""
        return self._update(item_id, reply=reply, replied_at=datetime.now(UTC), moderated_by=by)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(feedback.c.status, func.count()).group_by(feedback.c.status)
            ).all()
        return {s: 0 for s in STATUSES} | {str(s): int(n) for s, n in rows}

    def _update(self, item_id: int, **values: Any) -> Item | None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(feedback).where(feedback.c.id == item_id).values(**values)
            ).rowcount
        if not done:
            return None
        self._bump()
        return self.get(item_id)

    def _bump(self) -> None:
        with self._lock:
            self.version += 1


def _item(m: Any) -> Item:
    def t(v: datetime | None) -> datetime | None:
        return None if v is None else _utc(v)

    return Item(
        id=int(m["id"]),
        theme=m["theme"],
        district=m["district"],
        category=m["category"],
        lang=m["lang"],
        text=m["text"],
        status=m["status"],
        reason=m["reason"],
        created_at=_utc(m["created_at"]),
        moderated_at=t(m["moderated_at"]),
        moderated_by=m["moderated_by"],
        reply=m["reply"],
        replied_at=t(m["replied_at"]),
    )
