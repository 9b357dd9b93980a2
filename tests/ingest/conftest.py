"""Fixtures of the ingest tests: in-process workers on the session servers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.settings import Settings
from ingest.config import IngestConfig
from ingest.service import IngestService


def service(settings: Settings, tmp_path: Path, client_id: str, **over: object) -> IngestService:
    """An in-process ingest worker with test timings (not started): one fixed client id
    is one persistent session, so a second service with the same id resumes it."""
    cfg = IngestConfig(
        settings=settings,
        client_id=client_id,
        dead_letter_file=tmp_path / "deadletter.jsonl",
        metrics_port=None,
        batch_s=0.2,
        stats_interval_s=0.5,
        open_mode=True,  # binding has its own tests (test_binding.py)
    )
    return IngestService(dataclasses.replace(cfg, **over))  # type: ignore[arg-type]


@pytest.fixture
def ingest_factory(settings: Settings, tmp_path: Path) -> Iterator:
    services: list[IngestService] = []

    def start(**over: object) -> IngestService:
        client_id = str(over.pop("client_id", f"ingest-{len(services)}-{settings.topic_prefix}"))
        svc = service(settings, tmp_path, client_id, **over)
        svc.start()
        assert svc.wait_connected(10)
        services.append(svc)
        return svc

    yield start
    for svc in services:
        svc.stop()
