"""Every shipped sample configuration loads: a sample that drifts from its driver fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from contract.settings import load_toml
from edge.config import parse_config
from firmware_bridge.registry import DRIVERS, make_source

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "firmware_bridge").glob("*/sample.toml"))


def test_every_protocol_folder_has_a_sample() -> None:
    folders = {p.parent.name for p in (ROOT / "firmware_bridge").glob("*/decoder.py")}
    folders |= {p.parent.name for p in (ROOT / "firmware_bridge").glob("*/source.py")}
    assert folders and folders <= {p.parent.name for p in SAMPLES}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.parent.name)
def test_driver_sample_loads(sample: Path) -> None:
    doc = load_toml(sample)
    sources = doc["sources"]
    assert sources, f"{sample} has no [[sources]]"
    # The agent's checks (ids, sites, names) and the driver's own (ports, keys, ranges).
    cfg = parse_config(
        {
            "agent": {"id": "sample-agent", "site": "sample"},
            "mqtt": {"url": "mqtt://127.0.0.1:1883"},
            "outbox": {"path": "outbox.db", "max_bytes": 10_000_000},
            "sources": sources,
        },
        base_dir=sample.parent,
    )
    assert len(cfg.sources) == len(sources)
    for spec in cfg.sources:
        module = DRIVERS[spec.type].partition(":")[0]
        if importlib.util.find_spec(module.rpartition(".")[0]) is None:
            pytest.skip(f"{module} is not installed")
        make_source(spec.raw)
