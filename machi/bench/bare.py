"""The bare paho subscriber of ``machi bench ingest``: the MQTT side's ceiling.

Run as a separate process (as ingest is): ``python -m machi.bench.bare URL FILTER
CLIENT_ID COUNT``. With COUNT 0 it only creates its persistent session and
subscription, then exits. Otherwise it resumes the session and receives until COUNT
QoS 1 messages arrived (paho acknowledges each as it arrives: no storage, no decoding),
then prints the seconds from connecting to the last message as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from contract.mqtt import MqttOptions, connect, make_client
from contract.settings import Settings


def drain(url: str, topic_filter: str, client_id: str, count: int, protocol: int = 5) -> float:
    opts = MqttOptions(
        client_id=client_id, persistent=True, protocol=protocol, receive_maximum=20000
    )
    client, parsed = make_client(Settings(mqtt_url=url), opts)
    done = threading.Event()
    subscribed = threading.Event()
    got = [0]
    last = [0.0]

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        c.subscribe(topic_filter, qos=1)

    def on_message(_c: mqtt.Client, _u: Any, _m: mqtt.MQTTMessage) -> None:
        got[0] += 1
        if got[0] >= count:
            last[0] = time.perf_counter()
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    t0 = time.perf_counter()
    connect(client, parsed, opts)
    client.loop_start()
    if count <= 0:
        subscribed.wait(30)
        elapsed = 0.0
    else:
        if not done.wait(600):
            raise SystemExit(f"only {got[0]} of {count} messages in 600 s")
        elapsed = last[0] - t0
    client.disconnect()
    client.loop_stop()
    return elapsed


def main() -> int:
    url, topic_filter, client_id, count = sys.argv[1:5]
    print(json.dumps({"seconds": drain(url, topic_filter, client_id, int(count))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
