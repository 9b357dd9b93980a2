"""The agent in-process with scripted sources against the real (session) Mosquitto."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from contract.settings import Settings
from edge.agent import Agent
from edge.config import parse_config
from edge.outbox import read_stats
from tests.edge.fakes import CrashingSource, ScriptedSource
from tests.edge.helpers import Collector, config_doc, wait_for

pytestmark = pytest.mark.integration


def _start(cfg_doc: dict[str, Any], sources: dict[str, Any]) -> tuple[Agent, threading.Thread]:
    cfg = parse_config(cfg_doc)
    agent = Agent(cfg, factory=lambda raw: sources[raw["device_id"]])
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    return agent, th


def _seqs(msgs: list[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for m in msgs:
        out[m["device_id"]].append(m["seq"])
    return out


def test_batches_seqs_rejects_and_status(tmp_path: Path, settings: Settings) -> None:
    good = ScriptedSource(per_read=5, interval_s=0.01)
    mixed = ScriptedSource(per_read=5, interval_s=0.01, bad_every=7)
    doc = config_doc(
        tmp_path,
        settings,
        [
            {"type": "modbus_sdm", "device_id": "m-good", "port": "/x"},
            {"type": "modbus_sdm", "device_id": "m-mixed", "port": "/y"},
        ],
        batch_s=0.2,
        max_batch=40,
        status_interval_s=0.3,
        outbox={"require_confirmation": False},  # no ingest here: PUBACK is the end
    )
    col = Collector(settings)
    agent, th = _start(doc, {"m-good": good, "m-mixed": mixed})
    wait_for(lambda: good.counter > 300 and mixed.counter > 300, 20, "readings")
    agent.stop()
    th.join(15)
    assert not th.is_alive()

    stats = read_stats(tmp_path / "outbox.db")
    c = stats["counters"]
    assert stats["outbox_depth"] == 0, "everything must be acknowledged at a clean stop"
    msgs = wait_for(
        lambda: (
            (m := col.telemetry())
            and sum(len(x["readings"]) for x in m) >= c["committed_readings"]
            and m
        ),
        10,
        "all readings at the broker",
    )
    col.close()
    # Per device: seq 0,1,2,... with no gap and no repeat; batches never exceed max_batch.
    for dev, seqs in _seqs(msgs).items():
        assert sorted(seqs) == list(range(len(seqs))), dev
    assert all(1 <= len(m["readings"]) <= 40 for m in msgs)
    # Every reading of the good source arrived, exactly once, in order, with unique t.
    good_vals = [r["power_w"] for m in msgs if m["device_id"] == "m-good" for r in m["readings"]]
    assert good_vals == [float(i) for i in range(1, len(good_vals) + 1)]
    ts = [r["t"] for m in msgs for r in m["readings"] if m["device_id"] == "m-mixed"]
    assert len(set(ts)) == len(ts)
    # The contract-breaking readings (every 7th) are counted and kept with their reason.
    bad_vals = {float(i) for i in range(7, mixed.counter + 1, 7)}
    mixed_vals = {r["power_w"] for m in msgs if m["device_id"] == "m-mixed" for r in m["readings"]}
    assert not bad_vals & mixed_vals
    lines = [json.loads(x) for x in (tmp_path / "outbox.rejects.jsonl").read_text().splitlines()]
    assert {x["reason"] for x in lines} == {"schema"}
    assert {json.loads(x["raw"])["power_w"] for x in lines} == bad_vals
    assert c["rejects.schema"] == len(bad_vals)
    assert c["published_readings"] == c["committed_readings"] == len(good_vals) + len(mixed_vals)

    statuses = col.statuses()
    online = [s for s in statuses if s["state"] == "online"]
    assert online and set(online[-1]["sources"]) == {"modbus_sdm:m-good", "modbus_sdm:m-mixed"}
    assert online[-1]["sources"]["modbus_sdm:m-mixed"]["errors"] > 0
    assert statuses[-1]["state"] == "offline"


def test_failing_source_recovers_and_never_stops_others(tmp_path: Path, settings: Settings) -> None:
    ok = ScriptedSource(per_read=1, interval_s=0.02)
    flaky = ScriptedSource(per_read=1, interval_s=0.02)
    buggy = CrashingSource()
    flaky.fail.set()  # not plugged in at start
    doc = config_doc(
        tmp_path,
        settings,
        [
            {"type": "modbus_sdm", "device_id": "ok", "port": "/a"},
            {"type": "modbus_sdm", "device_id": "flaky", "port": "/b"},
            {"type": "modbus_sdm", "device_id": "buggy", "port": "/c"},
        ],
        batch_s=0.1,
    )
    agent, th = _start(doc, {"ok": ok, "flaky": flaky, "buggy": buggy})
    try:
        wait_for(lambda: ok.counter > 20, 10, "the healthy source to keep reading")
        assert flaky.opens == 0
        snap = agent.status_sources()
        assert not snap["modbus_sdm:flaky"].healthy and snap["modbus_sdm:flaky"].errors >= 1
        assert "not there" in (snap["modbus_sdm:flaky"].last_error or "")
        flaky.fail.clear()  # plugged back in: reopened after backoff, without a restart
        wait_for(lambda: flaky.counter > 10, 10, "the replugged source to read again")
        wait_for(lambda: agent.health["modbus_sdm:flaky"].readings > 5, 5, "its readings stored")
        assert agent.status_sources()["modbus_sdm:flaky"].healthy
        snap = agent.status_sources()
        assert (
            snap["modbus_sdm:buggy"].errors >= 2
            and "driver bug" in snap["modbus_sdm:buggy"].last_error
        )
        assert buggy.closes >= 2  # closed before every retry
        assert th.is_alive() and snap["modbus_sdm:ok"].healthy
    finally:
        agent.stop()
        th.join(15)


def test_agent_starts_while_broker_is_down(tmp_path: Path, own_mosquitto: Any) -> None:
    """No broker at boot: readings go to the outbox, and flow once the broker appears."""
    own_mosquitto.stop()
    settings = Settings(mqtt_url=own_mosquitto.url, topic_prefix="boot")
    src = ScriptedSource(per_read=1, interval_s=0.02)
    doc = config_doc(
        tmp_path,
        settings,
        [{"type": "modbus_sdm", "device_id": "m1", "port": "/a"}],
        batch_s=0.1,
        outbox={"require_confirmation": False},  # no ingest here: PUBACK is the end
    )
    agent, th = _start(doc, {"m1": src})
    try:
        wait_for(lambda: agent.outbox.depth >= 5, 10, "readings queued while offline")
        own_mosquitto.start()
        col = Collector(settings)
        wait_for(
            lambda: agent.outbox.depth == 0, 40, "the outbox to drain after the broker came up"
        )
        c = agent.outbox.counters()
        assert c["published_readings"] == c["committed_readings"] > 0
    finally:
        agent.stop()
        th.join(15)
    msgs = wait_for(lambda: col.telemetry(), 5, "telemetry at the collector")
    col.close()
    # The collector may have subscribed after the first re-sends; what it saw is gap-free
    # and ends at the last seq the outbox handed out.
    seqs = sorted(m["seq"] for m in msgs)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[-1] == read_stats(tmp_path / "outbox.db")["next_seq"]["m1"] - 1
