"""Storage confirmations: ``{prefix}/v1/stored/{device_id}``, published QoS 1, not retained.

Ingest publishes one after a batch is stored (InfluxDB answered 204), one message per
device in the batch, so an edge agent can keep a message until it is really stored
rather than only held in the broker's memory. ``seqs`` lists exactly the messages whose
every reading is in InfluxDB; ``deadlettered`` lists messages ingest refused and kept
(fsynced) in its dead-letter file, which re-sending would not fix. Both are sorted,
non-overlapping inclusive ranges ``[first, last]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec

from contract.ids import STRICT_ID_PATTERN

Id = Annotated[str, msgspec.Meta(pattern=STRICT_ID_PATTERN)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
#: Bounds a confirmation's size: a batch of 5000 lines cannot hold more ranges than this.
MAX_RANGES = 10_000
Ranges = Annotated[list[tuple[Seq, Seq]], msgspec.Meta(max_length=MAX_RANGES)]


class StoredConfirmation(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    device_id: Id
    seqs: Ranges = msgspec.field(default_factory=list)
    deadlettered: Ranges = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("seqs", "deadlettered"):
            last = -1
            for first, end in getattr(self, name):
                if first > end or first <= last:
                    raise ValueError(f"{name} must be sorted, non-overlapping [first, last] ranges")
                last = end


def to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """``{1, 2, 3, 7}`` -> ``[(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def encode_confirmation(c: StoredConfirmation) -> bytes:
    return msgspec.json.encode(c)


def decode_confirmation(payload: bytes) -> StoredConfirmation:
    """Raise ``msgspec.ValidationError``/``DecodeError`` on a malformed confirmation."""
    return msgspec.json.decode(payload, type=StoredConfirmation)
