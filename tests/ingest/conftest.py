"""Fixtures of the ingest tests: in-process workers on the session servers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.settings import Settings
from ingest.config import IngestConfig
from ingest.service import IngestService


@pytest.fixture
def ingest_factory(settings: Settings, tmp_path: Path) -> Iterator:
    services: list[IngestService] = []

    def start(**over: object) -> IngestService:
        cfg = IngestConfig(
            settings=settings,
            client_id=f"ingest-{len(services)}-{settings.topic_prefix}",
            dead_letter_file=tmp_path / "deadletter.jsonl",
            metrics_port=None,
            batch_s=0.2,
            stats_interval_s=0.5,
            open_mode=True,  # binding has its own tests (test_binding.py)
        )
        svc = IngestService(dataclasses.replace(cfg, **over))  # type: ignore[arg-type]
        svc.start()
        assert svc.wait_connected(10)
        services.append(svc)
        return svc

    yield start
    for svc in services:
        svc.stop()
