"""The one way to open a relational store: SQLite by default, PostgreSQL when configured.

Components that keep relational state (alert escalation, residents' feedback) open it
through :func:`open_engine`, so that a URL means the same everywhere and SQLite gets the
settings that make it durable and safe for several processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from contract.settings import ConfigError

__all__ = ["open_engine"]


def open_engine(url: str, option: str) -> Engine:
    """An SQLAlchemy engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    ``option`` names the setting the URL came from, for the error message. SQLite files
    get WAL, ``synchronous=FULL`` (a committed row survives a power cut) and a busy
    timeout, so two processes on one host can share the file.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"{option}={url!r} is not a database URL: use sqlite:///path/to/file.db or "
            "postgresql+psycopg://user:pass@host:5432/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise ConfigError(f"{option}={parsed.render_as_string()!r}: use sqlite:// or postgresql://")
