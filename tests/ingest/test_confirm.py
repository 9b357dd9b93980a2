"""Storage confirmations published by ingest (contract §7), on a real broker and InfluxDB.

Exactness is the point: ``seqs`` names only messages whose every reading InfluxDB
stored; a message ingest refused but kept in the dead-letter file is named under
``deadlettered``; a message it cannot attribute (bad JSON, another device in the payload)
is named nowhere.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from contract.confirm import StoredConfirmation, decode_confirmation
from contract.influx import InfluxV1
from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import make_message
from contract.settings import ConfigError, Settings
from ingest.deadletter import read_dead_letters
from machi.simulate import Publisher
from machi.testkit import wait_until

pytestmark = pytest.mark.integration


class Confirmations:
    """Subscribes to ``{prefix}/v1/stored/#`` and keeps (topic device, confirmation)."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = f"{settings.topic_prefix}/v1/stored/"
        self.got: list[tuple[str, StoredConfirmation]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        opts = MqttOptions(client_id=f"confirms-{uuid.uuid4().hex[:8]}")
        self.client, url = make_client(settings, opts)

        def on_connect(c: mqtt.Client, *_a: Any) -> None:
            c.subscribe(self.prefix + "#", qos=0)

        def on_subscribe(*_a: Any) -> None:
            ready.set()

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            conf = decode_confirmation(bytes(msg.payload))
            with self.lock:
                self.got.append((msg.topic[len(self.prefix) :], conf))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        connect(self.client, url, opts)
        self.client.loop_start()
        assert ready.wait(10), "could not subscribe to the confirmations"

    def seqs(self, field: str) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        with self.lock:
            for dev, conf in self.got:
                for first, last in getattr(conf, field):
                    out.setdefault(dev, set()).update(range(first, last + 1))
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _now() -> int:
    return time.time_ns() // 1_000_000


def _bus(dev: str, seq: int, t: int, **reading: Any) -> bytes:
    r = {"t": t, "lat": 35.6, "lon": 138.5, "route_id": "R1", **reading}
    return json.dumps(
        {"device_id": dev, "kind": "bus", "site": "kofu", "seq": seq, "readings": [r]}
    ).encode()


def test_confirmations_name_exactly_what_was_stored(
    settings: Settings, influx: InfluxV1, ingest_factory: Any
) -> None:
    # Earlier data made power_w an integer field: every energy reading is refused by InfluxDB.
    influx.write_lines(f"energy_meter,device_id=old,site=kita power_w=1i {_now() - 5000}".encode())
    svc = ingest_factory(batch_s=1.0)
    confs = Confirmations(settings)
    p = settings.topic_prefix
    pub = Publisher(settings, "pub-confirm")
    t = _now() - 60_000
    try:
        stored_b1 = [0, 1, 2, 3, 4, 7]  # a gap: 5 and 6 never sent
        for seq in stored_b1:
            pub.publish_raw(f"{p}/v1/telemetry/bus/b1", _bus("b1", seq, t + seq))
        # Refused, kept in the dead-letter file, attributable to (device, seq):
        pub.publish_raw(f"{p}/v1/telemetry/bus/b1", _bus("b1", 8, t - 40 * 86_400_000))
        pub.publish_raw(f"{p}/v1/telemetry/bus/b2", _bus("b2", 3, t, lat=999))
        pub.publish(make_message("energy_meter", "m-x", "kita", 0, [{"t": t, "power_w": 3.5}]))
        # Refused and not attributable: no confirmation anywhere.
        pub.publish_raw(f"{p}/v1/telemetry/bus/b3", _bus("b4", 0, t))
        pub.publish_raw(f"{p}/v1/telemetry/bus/b5", b"{oops")
        # Stored, but not telemetry: no confirmation.
        from contract.status import AgentStatus, encode_status

        pub.publish_raw(f"{p}/v1/status/edge-1", encode_status(AgentStatus("edge-1", "online", t)))
        assert pub.flush(20)
        wait_until(lambda: read_dead_letters(svc.cfg.dead_letter_file), lambda e: len(e) >= 5, 20)
        want_dead = {"b1": {8}, "b2": {3}, "m-x": {0}}
        wait_until(lambda: confs.seqs("deadlettered"), lambda d: d == want_dead, 10)
        wait_until(lambda: confs.seqs("seqs"), lambda s: s == {"b1": set(stored_b1)}, 10)
        time.sleep(1.5)  # anything more would arrive now
        assert confs.seqs("seqs") == {"b1": set(stored_b1)}
        assert confs.seqs("deadlettered") == want_dead
        # Every confirmed seq really is in InfluxDB, with all its readings.
        rows = influx.rows("SELECT seq FROM bus WHERE device_id = 'b1'")
        assert sorted(int(r["seq"]) for r in rows) == stored_b1
        with confs.lock:
            got = list(confs.got)
        assert all(dev == conf.device_id for dev, conf in got)
        # One message per device per batch, not per message: six b1 messages, one batch.
        assert 1 <= sum(1 for dev, c in got if dev == "b1" and c.seqs) <= 2
        assert svc.counts["confirmations"] == len(got)
    finally:
        pub.close()
        confs.close()


def test_no_confirm_publishes_nothing(
    settings: Settings, influx: InfluxV1, ingest_factory: Any
) -> None:
    ingest_factory(confirm=False)
    confs = Confirmations(settings)
    pub = Publisher(settings, "pub-noconfirm")
    try:
        pub.publish_raw(f"{settings.topic_prefix}/v1/telemetry/bus/b9", _bus("b9", 0, _now()))
        assert pub.flush(10)
        wait_until(lambda: influx.rows("SELECT seq FROM bus"), bool, 15)
        time.sleep(1.5)
        assert confs.got == []
    finally:
        pub.close()
        confs.close()


def test_confirm_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.cli import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def cfg(*argv: str) -> bool:
        return config_from_args(parser.parse_args(["ingest", *argv])).confirm

    monkeypatch.delenv("MACHI_INGEST_CONFIRM", raising=False)
    assert cfg() is True
    assert cfg("--no-confirm") is False
    monkeypatch.setenv("MACHI_INGEST_CONFIRM", "off")
    assert cfg() is False
    assert cfg("--confirm") is True  # the flag wins
    monkeypatch.setenv("MACHI_INGEST_CONFIRM", "maybe")
    with pytest.raises(ConfigError, match="MACHI_INGEST_CONFIRM"):
        cfg()
