"""Mosquitto restarted under load (nothing may be lost) and crashed (a known limit).

A graceful stop writes the broker's persistence file, so queued messages and sessions
survive it. A crash (SIGKILL) does not: mosquitto saves only on shutdown and every
``autosave_interval`` (10 s in deploy/mosquitto/machi.conf), so messages it acknowledged
to publishers after the last save are gone. The crash tests pin that bound down.

The publishers here are plain at-least-once clients that forget a message at its PUBACK
(like third-party devices publishing straight to the broker): for them the loss is
real. machi edge agents keep each message until ingest confirms it stored, and
re-publish what a crash destroyed: see test_fault_edge.py
(test_broker_crash_with_ingest_offline_loses_nothing_with_confirmations).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from contract.influx import InfluxV1
from contract.settings import Settings
from machi.servers import Influxd, Mosquitto
from machi.testkit import wait_until
from tests.faults.accounting import Ledger, assert_clean, settle
from tests.faults.harness import SaveWatcher, Stream, ingest, save_id

pytestmark = pytest.mark.faults


def _on(s: Settings, mq: Mosquitto) -> Settings:
    return Settings(
        mqtt_url=mq.url, influx_url=s.influx_url, influx_db=s.influx_db, topic_prefix=s.topic_prefix
    )


def test_mosquitto_restarted_twice_under_load(
    settings: Settings, influx: InfluxV1, own_mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    s = _on(settings, own_mosquitto)
    ing = ingest(tmp_path, "ingest", own_mosquitto.url, influxd.url, s)
    ing.start()
    ledger = Ledger()
    streams = [Stream(s, ledger, rounds=60, pause_s=0.15, name=f"pub{i}").start() for i in range(2)]
    for _ in range(2):
        time.sleep(2.5)
        own_mosquitto.stop()  # graceful: the persistence file is written on the way out
        time.sleep(1.0)
        own_mosquitto.start()  # same port and data directory
    for st in streams:
        st.join()
    assert ledger.readings == sum(st.expected for st in streams)
    resent = sum(st.publisher.resent for st in streams if st.publisher)
    print(f"messages re-published after reconnects: {resent}")
    assert_clean(settle("mosquitto restarted x2", ledger, influx))
    ing.stop()


def test_mosquitto_crash_loses_what_came_after_the_last_autosave(
    settings: Settings, influx: InfluxV1, own_mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    """Characterisation of a KNOWN LIMITATION, not a guarantee.

    Messages queued for an offline ingest session before mosquitto's last autosave
    survive a broker crash; messages acknowledged after it are lost, all of them.
    """
    s = _on(settings, own_mosquitto)
    ing = ingest(tmp_path, "ingest", own_mosquitto.url, influxd.url, s)
    ing.start()
    ing.stop()  # the session stays on the broker, offline: messages queue for it
    before = Ledger()
    Stream(s, before, rounds=5, pause_s=0.0, name="before").start().join()
    # Wait for an autosave after `before` was queued: the file is replaced on each save.
    first = save_id(own_mosquitto)
    deadline = time.monotonic() + 25
    while save_id(own_mosquitto) == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert save_id(own_mosquitto) != first, "mosquitto never autosaved within 25 s"
    saved_at = time.monotonic()
    after = Ledger()
    Stream(s, after, rounds=5, pause_s=0.0, name="after").start().join()  # all PUBACKed
    assert time.monotonic() - saved_at < 8, "too slow: the next autosave may have run"
    own_mosquitto.kill()
    own_mosquitto.start()
    ing.start()
    everything = Ledger().merge(before).merge(after)
    a = settle(
        "mosquitto crash, queue since autosave (KNOWN LIMIT)",
        everything,
        influx,
        allow_lost=after.readings,
    )
    print("  ^ known limitation: the lost readings are those acked after the last autosave")
    assert a.duplicated == a.unexpected == 0, a.examples
    assert a.missing == after.readings_set(), "lost must be exactly what came after the save"
    ing.stop()


@pytest.mark.parametrize("ingest_online", [True, False], ids=["ingest-online", "ingest-offline"])
def test_mosquitto_crash_mid_stream_loses_at_most_the_autosave_window(
    settings: Settings,
    influx: InfluxV1,
    own_mosquitto: Mosquitto,
    influxd: Influxd,
    tmp_path: Path,
    ingest_online: bool,
) -> None:
    """Characterisation of a KNOWN LIMITATION: whatever a broker crash loses was
    acknowledged to a publisher after mosquitto's last autosave; nothing older is lost,
    nothing is doubled, and what was not yet acknowledged is re-published and stored.

    With ingest online and keeping up, messages leave the broker at once and the crash
    costs nothing; with ingest offline (or lagging) they wait in its session's queue,
    and the ones queued since the last save die with the broker.
    """
    s = _on(settings, own_mosquitto)
    ing = ingest(tmp_path, "ingest", own_mosquitto.url, influxd.url, s)
    ing.start()
    watcher = SaveWatcher(own_mosquitto)
    ledger = Ledger()
    stream = Stream(s, ledger, rounds=400, pause_s=0.1).start()  # halted after the crash
    time.sleep(1.0)
    if not ingest_online:
        ing.stop()  # its session queues from here on
    # Crash at a random moment after a save that holds the ingest session (and, when
    # ingest is offline, part of its queue).
    saves = len(watcher.saves)
    wait_until(lambda: len(watcher.saves), lambda n: n > saves, 25)
    assert len(watcher.saves) > saves, "mosquitto never autosaved within 25 s"
    time.sleep(random.uniform(1.0, 5.0))
    assert stream.thread.is_alive(), "the stream ended before the crash"
    own_mosquitto.kill()
    killed_at = time.monotonic()
    watcher.stop()
    last_save = max(t for t in watcher.saves if t <= killed_at)
    time.sleep(0.5)
    own_mosquitto.start()
    stream.halt.set()
    stream.join()
    ing.start()
    assert stream.publisher is not None
    acked_at = stream.publisher.acked_at
    name = "mosquitto crash mid-stream, " + (
        "ingest online" if ingest_online else "ingest offline (KNOWN LIMIT)"
    )
    a = settle(name, ledger, influx, timeout=30, allow_lost=10**9)
    print(f"  ^ known limitation: {a.lost} readings lost; {killed_at - last_save:.1f} s "
          "since the last autosave")  # fmt: skip
    assert a.duplicated == a.unexpected == 0, a.examples
    # 0.5 s margin: the save's snapshot is taken a moment before the file is replaced.
    early = sorted({(d, sq) for d, sq, _t in a.missing if acked_at[(d, sq)] < last_save - 0.5})
    assert not early, f"lost messages acked before the last autosave: {early[:5]}"
    if not ingest_online:
        assert a.lost > 0, "expected the documented loss; did mosquitto change?"
    ing.stop()
