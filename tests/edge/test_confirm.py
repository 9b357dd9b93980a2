"""Storage confirmations at the agent, in-process against the real (session) Mosquitto.

The test plays ingest's part by hand (publishing ``{prefix}/v1/stored/{device_id}``), so
every transition of the outbox state machine is driven and observed: PUBACK -> sent,
timeout -> same bytes re-published, confirmation -> deleted, restart -> still unconfirmed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.publish as publish
import pytest

from contract.confirm import StoredConfirmation, encode_confirmation, to_ranges
from contract.settings import Settings
from contract.topics import Topics
from edge.agent import Agent
from edge.config import parse_config
from tests.edge.fakes import ScriptedSource
from tests.edge.helpers import Collector, config_doc, wait_for

pytestmark = pytest.mark.integration


def _start(doc: dict[str, Any], src: ScriptedSource) -> tuple[Agent, threading.Thread]:
    agent = Agent(parse_config(doc), factory=lambda raw: src)
    th = threading.Thread(target=agent.run, daemon=True)
    th.start()
    return agent, th


def _stop(agent: Agent, th: threading.Thread) -> None:
    agent.stop()
    th.join(15)
    assert not th.is_alive()


def _confirm(settings: Settings, topic_device: str, conf: StoredConfirmation) -> None:
    url = settings.mqtt
    publish.single(
        Topics(settings.topic_prefix).stored(topic_device),
        encode_confirmation(conf),
        qos=0,
        hostname=url.host,
        port=url.port,
    )


def _outbox_seqs(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [s for (s,) in db.execute("SELECT seq FROM messages ORDER BY seq")]


def _sends(col: Collector) -> dict[int, list[bytes]]:
    """Every payload the broker delivered for device m1, by seq."""
    out: dict[int, list[bytes]] = defaultdict(list)
    with col.lock:
        for topic, payload in col.messages:
            if "/v1/telemetry/" in topic:
                out[msgspec.json.decode(payload)["seq"]].append(bytes(payload))
    return out


def test_sent_rows_wait_for_confirmation_are_resent_and_survive_restart(
    tmp_path: Path, settings: Settings
) -> None:
    src = ScriptedSource(per_read=1, interval_s=0.05)
    doc = config_doc(
        tmp_path,
        settings,
        [{"type": "modbus_sdm", "device_id": "m1", "port": "/a"}],
        batch_s=0.1,
        status_interval_s=0.3,
        outbox={"confirm_timeout_s": 1},
    )
    path = tmp_path / "outbox.db"
    col = Collector(settings)
    agent, th = _start(doc, src)
    try:
        wait_for(lambda: agent.outbox.depth >= 6, 10, "messages in the outbox")
        src.fail.set()  # the device goes quiet: the set of messages is fixed from here
        time.sleep(0.3)
        wait_for(
            lambda: agent.outbox.unconfirmed() == agent.outbox.depth,
            10,
            "every message acknowledged by the broker (sent, not confirmed)",
        )
        seqs = _outbox_seqs(path)
        assert seqs == list(range(len(seqs))), "PUBACK must not delete a row any more"
        assert agent.uplink.status("online").unconfirmed == len(seqs)

        # Nobody confirms: after confirm_timeout_s each is re-published, byte for byte.
        wait_for(lambda: all(len(_sends(col)[s]) >= 2 for s in seqs), 10, "re-publishes")
        for s, payloads in _sends(col).items():
            assert len(set(payloads)) == 1, f"seq {s} re-published with other bytes"
        assert agent.outbox.counters()["resent_messages"] >= len(seqs)

        # Confirmations that do not fit are ignored: wrong device in the payload, and
        # a device this agent does not serve.
        everything = to_ranges(seqs)
        _confirm(settings, "m1", StoredConfirmation("m2", seqs=everything))
        _confirm(settings, "m2", StoredConfirmation("m2", seqs=everything))
        time.sleep(1.0)
        assert _outbox_seqs(path) == seqs

        # Ingest stored the first half: exactly those rows go.
        half = seqs[: len(seqs) // 2]
        _confirm(settings, "m1", StoredConfirmation("m1", seqs=to_ranges(half)))
        rest = seqs[len(half) :]
        wait_for(lambda: _outbox_seqs(path) == rest, 10, "the confirmed rows deleted")
        assert agent.outbox.counters()["confirmed_messages"] == len(half)
    finally:
        _stop(agent, th)

    # Restart: the unconfirmed rows are still there, re-sent once due, and deleted by
    # their confirmation (the new agent follows m1's topic from the start).
    assert _outbox_seqs(path) == rest
    with col.lock:
        col.messages.clear()
    agent, th = _start(doc, src)  # still failing: no new readings
    try:
        wait_for(lambda: all(_sends(col)[s] for s in rest), 15, "re-sends after the restart")
        _confirm(settings, "m1", StoredConfirmation("m1", seqs=[(0, rest[-1])]))
        wait_for(lambda: agent.outbox.depth == 0, 10, "every row confirmed")
        c = agent.outbox.counters()
        assert c["confirmed_messages"] == c["committed_messages"] == len(seqs)
        assert c["published_messages"] == len(seqs)  # re-sends are not counted again
    finally:
        _stop(agent, th)
        col.close()


def test_without_require_confirmation_puback_deletes(tmp_path: Path, settings: Settings) -> None:
    src = ScriptedSource(per_read=1, interval_s=0.05)
    doc = config_doc(
        tmp_path,
        settings,
        [{"type": "modbus_sdm", "device_id": "m3", "port": "/a"}],
        batch_s=0.1,
        outbox={"require_confirmation": False},
    )
    agent, th = _start(doc, src)
    try:
        wait_for(lambda: agent.outbox.counters().get("published_messages", 0) >= 5, 10, "PUBACKs")
        src.fail.set()
        wait_for(lambda: agent.outbox.depth == 0, 10, "rows deleted at PUBACK")
        assert agent.outbox.unconfirmed() == 0
        assert "confirmed_messages" not in agent.outbox.counters()
    finally:
        _stop(agent, th)
