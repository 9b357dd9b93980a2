"""Dead-letter store: every rejected message, with its reason, in a JSONL file.

Entries are appended as they happen and fsynced before the messages they describe are
acknowledged, so a rejected message is never acknowledged without a durable trace.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path


class DeadLetterFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: concurrent workers sharing a file never interleave within a line.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()
        self._dirty = False

    def append(
        self,
        reason: str,
        detail: str,
        topic: str,
        payload: bytes,
        worker: str,
        extra: dict[str, object] | None = None,
    ) -> None:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reason": reason,
            "detail": detail,
            "topic": topic,
            "payload_bytes": len(payload),
            "worker": worker,
        }
        try:
            entry["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            entry["payload_b64"] = base64.b64encode(payload).decode()
        if extra:
            entry.update(extra)
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)
            self._dirty = True

    def sync(self) -> None:
        """Make every appended entry durable (called before acknowledging)."""
        with self._lock:
            if self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    def close(self) -> None:
        self.sync()
        os.close(self._fd)


def read_dead_letters(path: Path) -> list[dict[str, object]]:
    """All entries of a dead-letter file (for operators and tests)."""
    if not Path(path).exists():
        return []
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
