"""End-to-end fuzz: mosquitto -> ``machi ingest`` (a real subprocess) -> influxd.

Thousands of hostile messages are interleaved with valid ones. The oracle is the
contract itself (``decode_message`` / ``Topics``): every message it accepts must be
stored exactly as given, every one it rejects must be in the dead-letter file with the
same reason, and the rejects must be counted in ingest's metrics.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.influx import InfluxV1
from contract.schema import Reason, Rejected, decode_message, encode_message, make_message
from contract.settings import Settings
from contract.topics import Topics
from machi.servers import IngestProcess
from machi.testkit import Publisher

from .test_contract_fuzz import _expected, _mutate, _read_back

pytestmark = pytest.mark.integration

N_VALID = 1000
N_HOSTILE = 2000


@pytest.fixture
def ingest_proc(settings: Settings, influx: InfluxV1, tmp_path: Path) -> Iterator[IngestProcess]:
    # start() returns once the broker has acknowledged the subscription (SUBACK).
    ing = IngestProcess(
        tmp_path, settings.mqtt_url, settings.influx_url, settings.influx_db,
        settings.topic_prefix, client_id=f"fuzz-{settings.topic_prefix}",
        extra_args=["--stats-interval", "1"], open_mode=True,
    )  # fmt: skip
    ing.start()
    yield ing
    ing.stop()


def _build(topics: Topics, now_ms: int) -> list[tuple[str, bytes]]:
    rng = random.Random(20240601)
    valid: list[tuple[str, bytes]] = []
    base_t = now_ms - 3600_000
    for i in range(N_VALID):
        kind = ("energy_meter", "wearable", "bus")[i % 3]
        dev = f"fz-{kind[0]}-{i % 25}"
        readings: list[dict[str, Any]] = []
        for j in range(1 + i % 3):
            t = base_t + i * 10 + j
            if kind == "energy_meter":
                readings.append({"t": t, "power_w": rng.uniform(-5e3, 5e3), "voltage_v": 100.5})
            elif kind == "wearable":
                readings.append({"t": t, "heart_rate_bpm": rng.uniform(40, 180), "fall": j == 1})
            else:
                readings.append(
                    {
                        "t": t,
                        "lat": 35.0 + j / 1e3,
                        "lon": 139.0,
                        "route_id": "r-1",
                        "trip_id": 'say "hi", \\ = ok',
                    }  # fmt: skip
                )
        msg = make_message(kind, dev, "site-1", i, readings)
        valid.append((topics.telemetry(kind, dev), encode_message(msg)))
    hostile: list[tuple[str, bytes]] = []
    tele = f"{topics.prefix}/v1/telemetry"
    for i in range(N_HOSTILE):
        r = i % 8
        topic, payload = valid[rng.randrange(N_VALID)]
        # a private device id per hostile message, so a mutant that happens to be valid
        # can never merge into another message's points
        kind = topic.split("/")[-2]
        mdev = f"mut-{i}"
        payload = payload.replace(topic.split("/")[-1].encode(), mdev.encode())
        topic = topics.telemetry(kind, mdev)
        if r <= 3:
            hostile.append((topic, _mutate(rng, payload)))
        elif r == 4:
            hostile.append((topic, rng.randbytes(rng.randrange(0, 300))))
        elif r == 5:
            bad = rng.choice(["xyz", "bad id", "a,b=c", "Energy_meter"])
            hostile.append((f"{tele}/{bad}/{mdev}" if i % 2 else f"{tele}/{kind}/{bad}", payload))
        elif r == 6:
            hostile.append((f"{topics.prefix}/v1/status/{mdev}", _mutate(rng, b'{"agent_id":"x"}')))
        else:
            hostile.append((topic, payload + b" " * (300 * 1024) if i % 16 == 7 else payload[:-2]))
    # An oddity random mutation rarely hits: invalid UTF-8 inside a JSON string.
    hostile.append((topics.telemetry("wearable", "odd-1"), b'{"device_id":"odd-1\xff"}'))
    out = valid + hostile
    rng.shuffle(out)
    return out


def _oracle(topics: Topics, topic: str, payload: bytes, now_ms: int) -> Any:
    parsed = topics.parse_telemetry(topic)
    if parsed is None:
        if topic.startswith(f"{topics.prefix}/v1/status/"):
            return Reason.SCHEMA  # every status payload here is garbage
        return Reason.BAD_TOPIC
    try:
        return decode_message(parsed[0], parsed[1], payload, now_ms)
    except Rejected as exc:
        return exc.reason


def test_hostile_traffic_is_dead_lettered_and_valid_traffic_stored(
    settings: Settings, influx: InfluxV1, ingest_proc: IngestProcess
) -> None:
    topics = Topics(settings.topic_prefix)
    now_ms = time.time_ns() // 1_000_000
    traffic = _build(topics, now_ms)

    expected_points: dict[Any, dict[str, Any]] = {}
    expected_rejects: collections.Counter[tuple[str, str, bytes]] = collections.Counter()
    for topic, payload in traffic:
        result = _oracle(topics, topic, payload, now_ms)
        if isinstance(result, Reason):
            expected_rejects[(result.value, topic, payload)] += 1
        else:
            for key, fields in _expected(result):
                expected_points[key] = {**expected_points.get(key, {}), **fields}
    n_rejects = sum(expected_rejects.values())
    assert n_rejects > N_HOSTILE * 0.9 and len(expected_points) >= 2 * N_VALID

    _publish(settings, traffic)
    entries, got = _wait_for(ingest_proc, influx, n_rejects, len(expected_points))

    assert got == expected_points  # every valid reading once, exactly as sent, nothing else
    dead = collections.Counter((e["reason"], e["topic"], _payload(e)) for e in entries)
    missing, extra = expected_rejects - dead, dead - expected_rejects
    assert not missing and not extra, f"missing {list(missing)[:5]}, unexpected {list(extra)[:5]}"
    assert all(e["detail"] for e in entries)

    by_reason = collections.Counter(reason for reason, _t, _p in expected_rejects.elements())
    for reason, n in by_reason.items():
        counted = ingest_proc.metric("machi_ingest_rejects_total", f'reason="{reason}"')
        assert counted == n, f"{reason}: metric {counted} != {n}"


def _publish(settings: Settings, traffic: list[tuple[str, bytes]]) -> None:
    pub = Publisher(settings, f"fuzzer-{settings.topic_prefix}")
    for topic, payload in traffic:
        pub.publish_raw(topic, payload)
    assert pub.flush(30), f"{pub.unacked} messages never acknowledged"
    pub.close()


def _wait_for(
    ingest: IngestProcess, influx: InfluxV1, n_rejects: int, n_points: int
) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """Dead letters and stored points once both counts are reached (or after 90 s)."""
    deadline = time.monotonic() + 90
    while True:
        entries = _dead_letters(ingest.dead_letter_file)
        got = _read_back(influx)
        if (len(entries) >= n_rejects and len(got) >= n_points) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ingest.running, "ingest died: " + ingest.log.read_text()[-3000:]
    return entries, got


def test_invalid_utf8_status_is_a_schema_reject(
    settings: Settings, influx: InfluxV1, ingest_proc: IngestProcess
) -> None:
    topic = f"{settings.topic_prefix}/v1/status/gw-x"
    _publish(settings, [(topic, b'{"agent_id":"gw-x\x98"}')])
    entries, _ = _wait_for(ingest_proc, influx, 1, 0)
    assert [(e["reason"], e["topic"]) for e in entries] == [("schema", topic)]


def _dead_letters(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _payload(entry: dict[str, Any]) -> bytes:
    if "payload_b64" in entry:
        return base64.b64decode(entry["payload_b64"])
    return str(entry["payload"]).encode()
