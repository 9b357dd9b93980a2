"""Agent status messages: ``{prefix}/v1/status/{agent_id}``, retained, QoS 1.

An agent publishes ``state: "online"`` with its health every few seconds and sets an
MQTT last will of ``state: "offline"`` so the broker announces a lost agent.
``unconfirmed`` (optional, default 0) counts outbox messages the broker acknowledged
that ingest has not yet confirmed stored.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contract.ids import STRICT_ID_PATTERN

Id = Annotated[str, msgspec.Meta(pattern=STRICT_ID_PATTERN)]


class SourceHealth(msgspec.Struct, omit_defaults=True):
    healthy: bool
    readings: int = 0
    errors: int = 0
    last_ok_ms: int | None = None
    last_error: str | None = None


class AgentStatus(msgspec.Struct, omit_defaults=True):
    agent_id: Id
    state: Literal["online", "offline"]
    t: int
    outbox_depth: int = 0
    outbox_bytes: int = 0
    dropped: int = 0
    published: int = 0
    # Messages the broker acknowledged but ingest has not yet confirmed stored (part of
    # outbox_depth); optional, added with storage confirmations.
    unconfirmed: int = 0
    sources: dict[str, SourceHealth] = msgspec.field(default_factory=dict)


def encode_status(status: AgentStatus) -> bytes:
    return msgspec.json.encode(status)


def decode_status(payload: bytes) -> AgentStatus:
    """Raise ``msgspec.ValidationError``/``DecodeError`` on a malformed status."""
    return msgspec.json.decode(payload, type=AgentStatus)
