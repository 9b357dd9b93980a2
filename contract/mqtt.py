"""The one way machi components open an MQTT connection (paho-mqtt 2.x).

Handles the URL, credentials, TLS and client certificates, MQTT 5 / 3.1.1, and
persistent sessions, so ingest, the edge agent and the simulator behave alike.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract.settings import MqttUrl, Settings

#: A week: long enough to ride out any outage of a worker that will come back.
SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True)
class MqttOptions:
    client_id: str
    persistent: bool = False
    protocol: int = 5  # 5 or 311
    manual_ack: bool = False
    keepalive: int = 30
    receive_maximum: int | None = None
    will_topic: str | None = None
    will_payload: bytes | None = None


def make_client(settings: Settings, opts: MqttOptions) -> tuple[mqtt.Client, MqttUrl]:
    """A configured (not yet connected) paho client and the parsed broker URL."""
    url = settings.mqtt
    if opts.protocol not in (5, 311):
        raise ValueError(f"MQTT protocol {opts.protocol} is not supported: use 5 or 311")
    proto = MQTTProtocolVersion.MQTTv5 if opts.protocol == 5 else MQTTProtocolVersion.MQTTv311
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=opts.client_id,
        clean_session=None if opts.protocol == 5 else not opts.persistent,
        protocol=proto,
        manual_ack=opts.manual_ack,
    )
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls or settings.mqtt_ca:
        ctx = ssl.create_default_context(cafile=settings.mqtt_ca)
        if settings.mqtt_cert:
            ctx.load_cert_chain(settings.mqtt_cert, settings.mqtt_key)
        client.tls_set_context(ctx)
    if opts.will_topic:
        client.will_set(opts.will_topic, opts.will_payload, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # paho queues outgoing QoS 1 messages itself; the callers bound what they hand it.
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    return client, url


def connect(client: mqtt.Client, url: MqttUrl, opts: MqttOptions) -> None:
    """Start connecting (asynchronously; paho's loop retries until the broker answers)."""
    props = None
    clean_start: Any = mqtt.MQTT_CLEAN_START_FIRST_ONLY
    if opts.protocol == 5:
        props = Properties(PacketTypes.CONNECT)
        if opts.persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            clean_start = False
        else:
            clean_start = True
        if opts.receive_maximum:
            props.ReceiveMaximum = opts.receive_maximum
    client.connect_async(
        url.host, url.port, keepalive=opts.keepalive, clean_start=clean_start, properties=props
    )
