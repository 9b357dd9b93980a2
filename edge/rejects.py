"""The rejects file: every input the agent refused, with its reason and raw bytes.

One JSON object per line next to the outbox. The file is rotated once (``.1``) when it
passes its size limit, so a device spewing garbage cannot fill the disk; the per-reason
counts live on in the outbox database.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reject:
    t_ms: int
    source: str
    reason: str
    detail: str
    raw: bytes


def _raw_fields(raw: bytes) -> dict[str, str]:
    # Printable ASCII stays readable; anything else is kept exactly, as base64.
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return {"raw_b64": base64.b64encode(raw).decode("ascii")}
    if all(32 <= ord(c) < 127 or c in "\r\n\t" for c in text):
        return {"raw": text}
    return {"raw_b64": base64.b64encode(raw).decode("ascii")}


class RejectsLog:
    """Appends rejects as JSON lines; call from one thread (the agent's writer)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        lines = "".join(
            json.dumps(
                {
                    "t": r.t_ms,
                    "source": r.source,
                    "reason": r.reason,
                    "detail": r.detail[:500],
                    **_raw_fields(r.raw[:4096]),
                },
                ensure_ascii=True,
            )
            + "\n"
            for r in rejects
        )
        with self.path.open("a", encoding="ascii") as fh:
            fh.write(lines)
            fh.flush()
            size = fh.tell()
        if size > self.max_bytes:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
