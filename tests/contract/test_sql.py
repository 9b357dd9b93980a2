"""contract.sql.open_engine against real SQLite and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from contract.settings import ConfigError
from contract.sql import open_engine
from machi.servers import Postgres


def test_sqlite_is_durable_and_shared(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'store.db'}"
    a, b = open_engine(url, "MACHI_X"), open_engine(url, "MACHI_X")
    with a.begin() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        c.execute(text("CREATE TABLE t (x INTEGER)"))
        c.execute(text("INSERT INTO t VALUES (1)"))
    with b.connect() as c:
        assert c.execute(text("SELECT x FROM t")).scalar() == 1


@pytest.mark.integration
def test_postgres(postgres: Postgres) -> None:
    engine = open_engine(postgres.url, "MACHI_X")
    with engine.begin() as c:
        assert c.execute(text("SELECT current_database()")).scalar() == "machi"


@pytest.mark.parametrize("url", ["not a url", "mysql://x@y/z"])
def test_bad_urls_name_the_option(url: str) -> None:
    with pytest.raises(ConfigError, match="MACHI_X"):
        open_engine(url, "MACHI_X")
