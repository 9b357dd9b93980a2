"""A small synchronous client for InfluxDB's v1 HTTP API (``/query``, ``/write``, ``/ping``).

InfluxDB 1.x serves it natively, 2.x through DBRP mappings and 3.x Core too. Ingest's
writer, the KPI API and the tests all talk to InfluxDB through this one class.
"""

from __future__ import annotations

import gzip as gzip_mod
from typing import Any

import httpx

from contract.settings import Settings


class InfluxError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB answered {status}: {message}")
        self.status = status
        self.message = message


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier (database, measurement, tag key)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """Quote an InfluxQL string literal; the only safe way to put user input in a query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxV1:
    def __init__(
        self,
        url: str,
        db: str,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = (user, password or "") if user else None
        self.url = url.rstrip("/")
        self.db = db
        self.http = httpx.Client(base_url=self.url, headers=headers, auth=auth, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float = 30.0) -> InfluxV1:
        """A client for ``MACHI_INFLUX_*`` settings (URL, database, credentials)."""
        return cls(
            settings.influx_url,
            settings.influx_db,
            user=settings.influx_user,
            password=settings.influx_password,
            token=settings.influx_token,
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def ping(self) -> bool:
        try:
            return self.http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def create_database(self) -> None:
        self.execute(f"CREATE DATABASE {quote_ident(self.db)}")

    def execute(self, q: str) -> dict[str, Any]:
        """Run a statement that changes something (POST /query)."""
        r = self.http.post("/query", data={"q": q, "db": self.db})
        return self._result(r)

    def query(self, q: str, epoch: str = "ms") -> list[dict[str, Any]]:
        """Run a read-only InfluxQL query; return its series (one list per statement flattened)."""
        r = self.http.get("/query", params={"q": q, "db": self.db, "epoch": epoch})
        body = self._result(r)
        series: list[dict[str, Any]] = []
        for res in body.get("results", []):
            if "error" in res:
                raise InfluxError(400, res["error"])
            series.extend(res.get("series", []))
        return series

    def query_many(self, statements: list[str], epoch: str = "ms") -> list[list[dict[str, Any]]]:
        """Run several read-only statements in one request; return each one's series."""
        r = self.http.get(
            "/query", params={"q": ";\n".join(statements), "db": self.db, "epoch": epoch}
        )
        body = self._result(r)
        out: list[list[dict[str, Any]]] = [[] for _ in statements]
        for res in body.get("results", []):
            out[res.get("statement_id", 0)] = res.get("series", [])
        return out

    def rows(self, q: str, epoch: str = "ms") -> list[dict[str, Any]]:
        """Query and return rows as dicts (with the series' tags merged in)."""
        out = []
        for s in self.query(q, epoch):
            cols = s["columns"]
            tags = s.get("tags", {})
            for v in s.get("values", []):
                out.append({**tags, **dict(zip(cols, v, strict=True))})
        return out

    def write_lines(
        self, body: bytes, precision: str = "ms", gzip: bool = False, rp: str | None = None
    ) -> httpx.Response:
        """POST line protocol to ``/write``; ``gzip=True`` compresses it (level 1: most of
        gzip's size win at a fraction of its CPU); ``rp``: a retention policy other than
        the default. Raises ``httpx.HTTPError`` on network failures; the status code says
        the rest."""
        headers = {}
        if gzip:
            body = gzip_mod.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        params = {"db": self.db, "precision": precision}
        if rp is not None:
            params["rp"] = rp
        return self.http.post("/write", params=params, content=body, headers=headers)

    @staticmethod
    def _result(r: httpx.Response) -> dict[str, Any]:
        if r.status_code >= 300:
            try:
                msg = r.json().get("error", r.text)
            except ValueError:
                msg = r.text
            raise InfluxError(r.status_code, msg)
        data: dict[str, Any] = r.json()
        for res in data.get("results", []):
            if "error" in res:
                raise InfluxError(400, res["error"])
        return data
