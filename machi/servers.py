"""Start real Mosquitto and InfluxDB 1.x servers on free loopback ports.

The one way the demo, the tests and the benchmarks get their servers: each server gets
a fresh data directory under ``workdir`` and machi's shipped configuration.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from deploy import ROOT as DEPLOY_ROOT

DEPLOY = DEPLOY_ROOT


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str, fallback: str) -> str:
    path = shutil.which(name) or (fallback if os.path.exists(fallback) else None)
    if path is None:
        raise ServerError(
            f"{name} is not installed. Run `make setup` (as root it runs "
            "`apt-get install mosquitto influxdb`) or install it with your package manager."
        )
    return path


def _wait(check, what: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode}; log: {log}\n{_tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise ServerError(f"{what} did not become ready within {timeout}s; log: {log}\n{_tail(log)}")


def _tail(log: Path, n: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    return ""


class _Server:
    name = "server"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / f"{self.name}.log"

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        self.spawn()
        assert self.proc is not None
        _wait(self._ready, f"{self.name} on 127.0.0.1:{self.port}", timeout, self.proc, self.log)

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        logf = self.log.open("ab")
        extra_env: dict[str, str] | None = getattr(self, "env", None)
        env = {**os.environ, **extra_env} if extra_env else None
        self.proc = subprocess.Popen(
            self._argv(), stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        logf.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM), escalating to SIGKILL."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Crash it (SIGKILL), as a power cut would."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mosquitto(_Server):
    """A mosquitto broker with machi's ``deploy/mosquitto/machi.conf``."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        super().__init__(workdir, port)
        self.extra_conf = extra_conf
        (self.workdir / "data").mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        base = (DEPLOY / "mosquitto" / "machi.conf").read_text()
        conf.write_text(
            base
            + f"\npersistence_location {self.workdir / 'data'}/\n"
            + "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            # Run as the invoking user: as root, mosquitto would switch to the 'mosquitto'
            # user and could not write this data directory.
            + f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            + f"listener {self.port} 127.0.0.1\n"
            + (self.extra_conf or "allow_anonymous true\n")
        )
        return [_binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)]

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True


class Influxd(_Server):
    """An InfluxDB 1.x server (Debian's 1.6.7) with machi's ``deploy/influxdb/influxdb.conf``."""

    name = "influxd"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        d = self.workdir
        text = (DEPLOY / "influxdb" / "influxdb.conf").read_text()
        text = text.replace("[meta]\n", f'[meta]\n  dir = "{d}/meta"\n', 1)
        text = text.replace("[data]\n", f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n', 1)
        text = text.replace("[http]\n", f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n', 1)
        text = f'bind-address = "127.0.0.1:{self.rpc_port}"\n' + text
        conf = d / "influxdb.conf"
        conf.write_text(text)
        return [_binary("influxd", "/usr/bin/influxd"), "-config", str(conf)]

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204


class MachiProcess(_Server):
    """A ``machi <command> ...`` child process, ready when ``ready()`` says so."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        super().__init__(workdir, port)
        self.args = args
        self.env = env

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "machi.cli", *self.args]

    def _ready(self) -> bool:
        return True

    def log_contains(self, text: str) -> bool:
        with contextlib.suppress(OSError):
            return text in self.log.read_text(errors="replace")
        return False

    @property
    def metrics_url(self) -> str:
        """Its Prometheus endpoint, for commands started with ``--metrics-port`` = port."""
        return f"http://127.0.0.1:{self.port}/metrics"

    def metric_sum(self, name: str) -> float:
        """Sum of a metric over all its label values (0 if absent)."""
        rows = httpx.get(self.metrics_url, timeout=2).text.splitlines()
        return sum(float(r.split()[-1]) for r in rows if r.startswith((name + "{", name + " ")))

    def metric(self, name: str, labels: str = "") -> float:
        """Read one sample from its /metrics (0 if absent)."""
        key = f"{name}{{{labels}}}" if labels else name
        for row in httpx.get(self.metrics_url, timeout=2).text.splitlines():
            if row.startswith(key + " "):
                return float(row.split()[-1])
        return 0.0


class ApiProcess(MachiProcess):
    """``machi api`` on a free port, ready when ``/healthz`` answers."""

    def __init__(self, workdir: Path, influx_url: str, influx_db: str, env: dict[str, str]) -> None:
        port = free_port()
        args = ["api", "--influx-url", influx_url, "--influx-db", influx_db, "--port", str(port)]
        super().__init__(workdir, "api", args, env, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200


class EventsProcess(MachiProcess):
    """``machi events run``, ready once it has connected to the broker."""

    def __init__(self, workdir: Path, args: list[str]) -> None:
        super().__init__(workdir, "events", ["events", "run", *args])

    def _ready(self) -> bool:
        return self.log_contains('"msg": "connected"')


class AlertsProcess(MachiProcess):
    """``machi alerts run`` with its metrics on a free port, ready once connected."""

    def __init__(
        self,
        workdir: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        name: str = "alerts",
    ) -> None:
        port = free_port()
        argv = ["alerts", "run", "--metrics-port", str(port), "--instance", name, *args]
        super().__init__(workdir, name, argv, env, port)

    def _ready(self) -> bool:
        return (
            self.log_contains('"msg": "connected"')
            and self.metric("machi_alerts_mqtt_connected") == 1
        )

    @property
    def leads(self) -> bool:
        return self.metric("machi_alerts_leader") == 1


class IngestProcess(MachiProcess):
    """``machi ingest`` as a separate process (for crash tests, the demo and benchmarks).

    Ready once its Prometheus endpoint reports the subscription in place.
    """

    def __init__(
        self,
        workdir: Path,
        mqtt_url: str,
        influx_url: str,
        influx_db: str,
        topic_prefix: str,
        client_id: str = "machi-ingest",
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        *,
        registry: Path | None = None,
        open_mode: bool = False,
    ) -> None:
        """``registry`` binds devices to their kind and site; without one the caller must
        ask for ``open_mode`` (any device accepted), as the demo and benchmarks do."""
        port = free_port()
        dead_letter_file = Path(workdir) / "deadletter.jsonl"
        binding = ["--registry", str(registry)] if registry is not None else []
        if open_mode:
            binding.append("--open-mode")
        args = [
            "ingest",
            "--mqtt-url", mqtt_url,
            "--influx-url", influx_url,
            "--influx-db", influx_db,
            "--topic-prefix", topic_prefix,
            "--client-id", client_id,
            "--metrics-port", str(port),
            "--dead-letter-file", str(dead_letter_file),
            *binding,
            *(extra_args or []),
        ]  # fmt: skip
        super().__init__(workdir, "ingest", args, env, port)
        self.dead_letter_file = dead_letter_file

    def _ready(self) -> bool:
        text = httpx.get(self.metrics_url, timeout=0.5).text
        return "machi_ingest_mqtt_connected 1.0" in text


def _pg_bin(name: str) -> str:
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    raise ServerError(
        f"PostgreSQL's {name} is not installed. Run `make setup` (as root it runs "
        "`apt-get install postgresql`) or install it with your package manager."
    )


class Postgres(_Server):
    """A throwaway PostgreSQL cluster (Debian's ``postgresql``) on a free loopback port.

    As root, PostgreSQL refuses to run, so the cluster then belongs to the ``postgres``
    system user that Debian's package creates.
    """

    name = "postgres"

    def __init__(self, workdir: Path, port: int | None = None, db: str = "machi") -> None:
        super().__init__(workdir, port)
        self.db = db
        self._user_argv: list[str] = []
        self.home = self.workdir
        if os.geteuid() == 0:
            # The postgres user cannot enter root's 0700 temporary folders: its cluster
            # lives in a folder of its own, removed on leaving the ``with`` block.
            self.home = Path(tempfile.mkdtemp(prefix="machi-pg-"))
            shutil.chown(self.home, user="postgres")
            self._user_argv = ["runuser", "-u", "postgres", "--"]
        self.data = self.home / "pgdata"
        if not self.data.exists():
            subprocess.run(
                [*self._user_argv, _pg_bin("initdb"), "-D", str(self.data), "-A", "trust",
                 "-U", "machi", "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8"],
                check=True, capture_output=True,
            )  # fmt: skip

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3) of the test database."""
        return f"postgresql+psycopg://machi@127.0.0.1:{self.port}/{self.db}"

    def _argv(self) -> list[str]:
        return [
            *self._user_argv, _pg_bin("postgres"), "-D", str(self.data),
            "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.home),
            "-c", "fsync=off", "-c", "full_page_writes=off",
        ]  # fmt: skip

    def _ready(self) -> bool:
        r = subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "machi",
             "-d", "postgres", "-Atc", "SELECT 1"],
            capture_output=True, timeout=5,
        )  # fmt: skip
        if r.returncode != 0:
            return False
        subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "machi",
             "-d", "postgres", "-c", f'CREATE DATABASE "{self.db}"'],
            capture_output=True, timeout=10,
        )  # fmt: skip
        return True

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self.home != self.workdir:
            shutil.rmtree(self.home, ignore_errors=True)
