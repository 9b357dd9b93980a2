"""Write line protocol to InfluxDB: retry what can succeed later, isolate what never will.

- 2xx: stored. 5xx, 429, network errors, auth errors: retried with capped exponential
  backoff, forever -- the messages stay unacknowledged meanwhile, so nothing is lost.
- 400/422 (malformed or partial write) and 413 (too large): the batch is split in
  halves until every line is either stored or rejected on its own. Rewriting the good
  lines is harmless because writes are idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httpx

from contract.influx import InfluxError, InfluxV1
from contract.settings import Settings

log = logging.getLogger("machi.ingest.writer")


@dataclass(frozen=True)
class Answer:
    """What the database said about one write request."""

    status: int
    message: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def data_error(self) -> bool:
        """The lines themselves are at fault: retrying the same body cannot succeed."""
        return self.status in (400, 413, 422)


class Backend(Protocol):
    def post(self, body: bytes) -> Answer:
        """Send one request; network failures are reported as status 0."""

    def ensure_database(self) -> None: ...


class V1Backend:
    """InfluxDB's v1 ``/write`` (1.x natively; 2.x and 3.x Core via v1 compatibility)."""

    def __init__(self, settings: Settings, use_gzip: bool = True, timeout: float = 30.0) -> None:
        self.client = InfluxV1.from_settings(settings, timeout=timeout)
        self.db = settings.influx_db
        self.gzip = use_gzip

    def post(self, body: bytes) -> Answer:
        try:
            r = self.client.write_lines(body, precision="ms", gzip=self.gzip)
        except httpx.HTTPError as exc:
            return Answer(0, f"{type(exc).__name__}: {exc}")
        if r.status_code == 404 and "database not found" in r.text:
            self.ensure_database()
            return Answer(503, "database was missing and has been created; retrying")
        return Answer(r.status_code, "" if r.is_success else _error_text(r))

    def ensure_database(self) -> None:
        try:
            self.client.create_database()
        except (httpx.HTTPError, InfluxError) as exc:
            log.warning("could not create database %s yet: %s", self.db, exc)


class V2Backend:
    """InfluxDB 2.x native API (org/bucket/token) through ``influxdb-client``."""

    def __init__(self, settings: Settings) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        if not (settings.influx_token and settings.influx_org and settings.influx_bucket):
            raise ValueError("InfluxDB 2.x needs MACHI_INFLUX_TOKEN, _ORG and _BUCKET")
        self.client = InfluxDBClient(
            url=settings.influx_url, token=settings.influx_token, org=settings.influx_org
        )
        self.api = self.client.write_api(write_options=SYNCHRONOUS)
        self.bucket: str = settings.influx_bucket
        self.org: str = settings.influx_org

    def post(self, body: bytes) -> Answer:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            self.api.write(
                bucket=self.bucket,
                org=self.org,
                record=body.decode(),
                write_precision=cast(Any, WritePrecision.MS),
            )
        except ApiException as exc:
            return Answer(int(exc.status or 0), str(exc.body or exc.reason))
        except (Urllib3Error, OSError) as exc:
            return Answer(0, f"{type(exc).__name__}: {exc}")
        return Answer(204)

    def ensure_database(self) -> None:
        """Buckets are created by the operator on 2.x; nothing to do."""


def make_backend(settings: Settings, use_gzip: bool = True) -> Backend:
    if settings.influx_org and settings.influx_bucket:
        return V2Backend(settings)
    return V1Backend(settings, use_gzip=use_gzip)


def _error_text(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text[:500]


@dataclass
class Rejection:
    index: int
    line: str
    error: str


class Writer:
    """Stores a batch completely, returning the lines the database refuses outright."""

    def __init__(
        self,
        backend: Backend,
        max_retry_s: float = 30.0,
        stop: threading.Event | None = None,
        on_retry: Callable[[Answer], None] | None = None,
    ) -> None:
        self.backend = backend
        self.max_retry_s = max_retry_s
        self.stop = stop or threading.Event()
        self.on_retry = on_retry

    def write(self, lines: Sequence[str]) -> list[Rejection]:
        """Block until every line is stored or rejected. Raises ``InterruptedError`` on stop."""
        rejected: list[Rejection] = []
        self._write(lines, 0, rejected)
        return rejected

    def _write(self, lines: Sequence[str], offset: int, rejected: list[Rejection]) -> None:
        if not lines:
            return
        answer = self._post_until_decided("\n".join(lines).encode())
        if answer.ok:
            return
        if len(lines) == 1:
            rejected.append(Rejection(offset, lines[0], answer.message))
            return
        mid = len(lines) // 2
        self._write(lines[:mid], offset, rejected)
        self._write(lines[mid:], offset + mid, rejected)

    def _post_until_decided(self, body: bytes) -> Answer:
        delay = 0.1
        while True:
            answer = self.backend.post(body)
            if answer.ok or answer.data_error:
                return answer
            if answer.status in (401, 403):
                log.error(
                    "InfluxDB refused our credentials (%s): %s. Fix MACHI_INFLUX_USER/"
                    "PASSWORD/TOKEN; holding messages unacknowledged meanwhile",
                    answer.status,
                    answer.message,
                )
            else:
                log.warning(
                    "InfluxDB write failed (%s: %s); retrying in %.1fs",
                    answer.status or "network",
                    answer.message,
                    delay,
                )
            if self.on_retry:
                self.on_retry(answer)
            if self.stop.wait(delay):
                raise InterruptedError("stopping with a batch unwritten; it will be redelivered")
            delay = min(delay * 2, self.max_retry_s)
