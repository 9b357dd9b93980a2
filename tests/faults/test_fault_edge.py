"""Edge faults end to end: pty GPS receivers -> `machi edge run` -> Mosquitto -> ingest
-> InfluxDB, with the uplink cut, with the agent SIGKILLed halfway through draining
a large backlog, and with the broker crashing on a backlog queued for an offline ingest
(storage confirmations make the agent re-send what the broker lost). The ground truth of
what the agent committed is an audit copy of every outbox insert (a trigger, see
accounting.instrument_outbox); the simulators' own record
(`sim.sent`) checks that the devices' output reached the outbox in the first place.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.settings import Settings
from machi.servers import Influxd, Mosquitto
from machi.testkit import wait_for, wait_until
from machi.testkit.edge import EdgeStack, start_edge_stack
from tests.faults.accounting import (
    Ledger,
    assert_clean,
    instrument_outbox,
    outbox_ledger,
    settle,
    stored_points,
)
from tests.faults.harness import SaveWatcher

pytestmark = pytest.mark.faults


class EdgeRig(EdgeStack):
    """The edge stack, with the fault suite's ledger of what the agent committed."""

    def ledger(self) -> Ledger:
        return outbox_ledger(self.outbox)


@pytest.fixture
def rig(
    tmp_path: Path, own_mosquitto: Mosquitto, influxd: Influxd, settings: Settings
) -> Iterator[Any]:
    made: list[EdgeStack] = []

    def make(
        devices: int,
        period_s: float,
        max_inflight: int = 100,
        outbox_opts: dict[str, Any] | None = None,
        **agent: Any,
    ) -> EdgeRig:
        names = [f"bus-f{i}" for i in range(devices)]
        st = start_edge_stack(
            tmp_path, own_mosquitto, influxd.url, settings, names, period_s,
            links=[f"gps{i}" for i in range(devices)],
            agent={"id": "edge-faults", **agent},
            outbox={"max_bytes": 50_000_000, "confirm_timeout_s": 5, **(outbox_opts or {})},
            max_inflight=max_inflight,
            read_timeout_s=2.0,
            ingest_client_id=f"ingest-{settings.topic_prefix}",
            ingest_batch_s=0.3,
            prepare_outbox=instrument_outbox,
            cls=EdgeRig,
        )  # fmt: skip
        made.append(st)
        return st

    yield make
    for st in made:
        st.close()


def _finish(r: EdgeRig, timeout: float) -> None:
    """Silence the devices, let the agent drain its outbox, stop it cleanly.

    Without silencing them first, a reading committed during shutdown would stay in the
    outbox (delivered at the next start, not lost) and muddy the count.
    """
    for sim in r.sims.values():
        sim.stop()
    wait_for(lambda: r.stats()["outbox_depth"] == 0, timeout, "the outbox to drain")
    assert r.edge.stop() == 0
    assert r.stats()["outbox_depth"] == 0, "a reading was committed after the drain"


def _device_output_committed(r: EdgeRig, ledger: Ledger, skip_s: float = 2.0) -> None:
    """Every fix a simulator emitted while the agent was reading is in the outbox,
    except the first ``skip_s`` (ports opening) and what is newer than the last commit."""
    times: dict[str, set[int]] = {}
    for (dev, _seq), ts in ledger.messages.items():
        times.setdefault(dev, set()).update(ts)
    for dev, sim in r.sims.items():
        got = times.get(dev, set())
        assert got, f"{dev}: nothing committed"
        lo, hi = min(got) + int(skip_s * 1000), max(got)
        window = [f["t"] for f in list(sim.sent) if lo <= f["t"] <= hi]
        missing = [t for t in window if t not in got]
        assert window and not missing, f"{dev}: {len(missing)} of {len(window)} fixes missing"


def test_edge_uplink_cut_while_devices_produce(rig: Any) -> None:
    r = rig(devices=2, period_s=0.1, batch_s=0.3)
    wait_for(lambda: r.committed() >= 20, 20, "the agent committing readings")
    r.mq.stop()  # the uplink is gone; the receivers keep talking
    wait_for(lambda: r.stats()["outbox_depth"] >= 20, 20, "a backlog in the outbox")
    time.sleep(3)
    queued = r.stats()["outbox_depth"]
    r.mq.start()
    _finish(r, 60)
    ledger = r.ledger()
    _device_output_committed(r, ledger)
    a = settle("edge uplink cut", ledger, r.influx)
    print(f"  backlog at reconnect: {queued} messages")
    assert_clean(a)
    assert r.stats()["counters"].get("dropped_readings", 0) == 0


def test_edge_agent_sigkilled_mid_drain(rig: Any) -> None:
    # One reading per message, small in-flight window: a backlog of ~1000 messages takes
    # long enough to drain that the kill lands in the middle of it.
    r = rig(devices=6, period_s=0.05, batch_s=0.05, max_batch=1, max_inflight=5)
    wait_for(lambda: r.committed() >= 50, 20, "the agent committing readings")
    r.mq.stop()
    wait_for(lambda: r.stats()["outbox_depth"] >= 800, 40, "a large backlog")
    backlog = r.stats()["outbox_depth"]
    r.mq.start()

    def part_drained() -> int:
        d = int(r.stats()["outbox_depth"])
        assert d > 0, "the backlog drained before the kill: lower max_inflight or add devices"
        return d if d <= backlog * 0.6 else 0

    depth = wait_for(part_drained, 60, "the drain to be under way")
    r.edge.kill()  # SIGKILL mid-flush: rows handed to paho, PUBACKs pending
    left = r.stats()["outbox_depth"]
    r.edge.start()
    _finish(r, 90)
    ledger = r.ledger()
    a = settle("edge agent SIGKILL mid-drain", ledger, r.influx)
    print(f"  backlog {backlog} messages, killed at depth {depth}, {left} left after the kill")
    assert 0 < left < backlog
    assert_clean(a)


def test_broker_crash_with_ingest_offline_loses_nothing_with_confirmations(rig: Any) -> None:
    """The broker PUBACKs the agent's messages, holds them for the offline ingest, and is
    SIGKILLed before its next autosave: it loses them (as test_fault_broker measures for
    plain publishers). The agent kept them as *sent*, unconfirmed, and re-publishes them
    once confirm_timeout_s passes without a storage confirmation: nothing lost or doubled.
    """
    timeout_s = 30
    r = rig(devices=2, period_s=0.1, batch_s=0.3, outbox_opts={"confirm_timeout_s": timeout_s})
    wait_for(lambda: r.committed() >= 20, 20, "the agent committing readings")
    wait_for(lambda: r.stats()["counters"].get("confirmed_messages", 0) >= 5, 20, "confirmations")
    r.ingest.stop()  # offline: its persistent session queues on the broker from here on
    watcher = SaveWatcher(r.mq)
    saves = len(watcher.saves)
    wait_until(lambda: len(watcher.saves), lambda n: n > saves, 25)
    assert len(watcher.saves) > saves, "mosquitto never autosaved within 25 s"
    time.sleep(3.0)  # the agent gets PUBACKs for messages the broker has not saved
    r.mq.kill()
    killed_ms = int(time.time() * 1000)
    watcher.stop()
    with sqlite3.connect(f"file:{r.outbox}?mode=ro", uri=True) as db:
        sent = dict(
            ((dev, seq), due)
            for dev, seq, due in db.execute(
                "SELECT device_id, seq, due_ms FROM messages WHERE due_ms IS NOT NULL"
            )
        )
    assert sent, "no message was waiting for a confirmation at the crash"
    r.mq.start()
    r.ingest.start()
    # Ingest drains what the broker kept. What is still missing now, before any re-send is
    # due, is what the crash destroyed after the broker had acknowledged it.
    time.sleep(6.0)
    assert int(time.time() * 1000) < min(sent.values()), "re-sends began too early to tell"
    stored = {(d, s) for d, s, _t in stored_points(r.influx, ["bus"])}
    destroyed = set(sent) - stored
    assert destroyed, "the crash lost nothing: did mosquitto's persistence change?"
    _finish(r, timeout_s * 2 + 60)  # the re-sends are due within confirm_timeout_s
    stats = r.stats()
    ledger = r.ledger()
    _device_output_committed(r, ledger)
    a = settle("broker crash, ingest offline, edge confirmations", ledger, r.influx)
    print(
        f"  {len(destroyed)} acknowledged messages destroyed by the crash, re-sent: "
        f"{stats['counters'].get('resent_messages', 0)}; killed at {killed_ms}"
    )
    assert stats["counters"].get("resent_messages", 0) >= len(destroyed)
    assert stats["counters"].get("dropped_readings", 0) == 0
    assert_clean(a)
