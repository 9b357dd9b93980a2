"""``machi ingest --workers N``: N ingest processes on one shared subscription.

One Python process is bound to one core by its GIL; N processes share the stream
through ``$share/GROUP/...`` (the broker hands each message to one of them). Worker
``i`` runs ``machi ingest`` with client id ``{client_id}-{i}`` (its own persistent
session), the group ``--shared-group`` (default: the client id) and metrics port
``--metrics-port + i``. This parent only supervises: it restarts a worker that dies
(its session, and so its unacknowledged messages, are resumed) and passes SIGTERM on.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from contract.settings import ConfigError
from ingest.config import IngestConfig, resolve_workers

__all__ = ["resolve_workers", "run_workers", "worker_args"]

log = logging.getLogger("machi.ingest.workers")


def worker_args(cfg: IngestConfig, i: int) -> list[str]:
    """Flags that make worker ``i`` of a group (appended last: argparse keeps the last)."""
    group = cfg.shared_group or cfg.client_id
    port = cfg.metrics_port
    metrics = "-1" if port is None else "0" if port == 0 else str(port + i)
    return [
        "--workers", "1",
        "--client-id", f"{cfg.client_id}-{i}",
        "--shared-group", group,
        "--metrics-port", metrics,
        "--dead-letter-file", f"{cfg.dead_letter_file}.{i}",
    ]  # fmt: skip


def run_workers(cfg: IngestConfig, n: int, argv: Sequence[str]) -> int:
    """Run ``n`` workers with the parent's own ``machi`` arguments ``argv``; return the
    exit code (0 after SIGTERM/SIGINT, 2 if a worker refused its configuration)."""
    if cfg.metrics_port and cfg.metrics_port + n - 1 > 65535:
        raise ConfigError(f"--metrics-port {cfg.metrics_port} + {n} workers exceeds 65535")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())

    def spawn(i: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "machi.cli", *argv, *worker_args(cfg, i)]
        return subprocess.Popen(cmd)

    procs = [spawn(i) for i in range(n)]
    log.info(
        "ingest workers started", extra={"fields": {"workers": n, "pids": [p.pid for p in procs]}}
    )
    code = 0
    while not done.wait(0.5):
        for i, p in enumerate(procs):
            rc = p.poll()
            if rc is None:
                continue
            if rc == 2:
                log.error("ingest worker %d refused its configuration; stopping all", i)
                done.set()
                code = 2
                break
            log.error("ingest worker %d exited with %s; restarting it in 1 s", i, rc)
            time.sleep(1.0)
            procs[i] = spawn(i)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return code
