"""The API's handle on the alert store of ``machi alerts run`` (``MACHI_ALERTS_DB``).

Opened on first use, so an API that never serves open alerts never touches the store.
"""

from __future__ import annotations

import threading

from alerts.options import AlertsStoreOptions
from alerts.store import AlertStore
from contract.options import load_options

__all__ = ["AlertStoreHandle"]


class AlertStoreHandle:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or load_options(AlertsStoreOptions).alerts_db
        self._store: AlertStore | None = None
        self._lock = threading.Lock()

    def get(self) -> AlertStore:
        with self._lock:
            if self._store is None:
                self._store = AlertStore.open(self.url)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
