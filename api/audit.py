"""Append-only audit log of access to care data (JSON lines).

Each entry is written with one ``write()`` on a descriptor opened ``O_APPEND`` and
fsync'ed before the response is sent, so an entry is either whole or absent. The file
is reopened for every entry, so rotation is a plain rename (logrotate ``nocopytruncate``
with ``create`` off, or ``mv`` by cron): the next access creates a fresh file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, key_id: str, scope: str, action: str, **what: Any) -> None:
        """Log who (key id and scope), what (action + parameters) and when (UTC)."""
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "ts_ms": int(time.time() * 1000),
            "key_id": key_id,
            "scope": scope,
            "action": action,
            **what,
        }
        data = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
