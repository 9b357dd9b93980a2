"""``machi alerts run``'s option table (see contract.options); the API's store option."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import SecretStr

from contract.options import ConnectionOptions, Options, option

__all__ = ["DEFAULT_DB", "AlertsOptions", "AlertsStoreOptions", "default_instance"]

DEFAULT_DB = "sqlite:///.machi/alerts/alerts.db"


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class AlertsStoreOptions(Options):
    """Where alert state lives; shared by ``machi alerts run`` and ``machi api``."""

    alerts_db: str = option(
        DEFAULT_DB,
        env="MACHI_ALERTS_DB",
        help="alert store: sqlite:///path (one host) or postgresql+psycopg://... (several)",
    )


class AlertsOptions(ConnectionOptions, AlertsStoreOptions):
    """Options of one ``machi alerts run`` instance."""

    rules: Path | None = option(
        None,
        env="MACHI_ALERT_RULES",
        help="routing rules file (TOML, docs/alerts.md; required)",
    )
    client_id: str = option(
        "machi-alerts",
        env="MACHI_ALERTS_CLIENT_ID",
        help="MQTT client id of this instance's persistent session (unique per instance)",
    )
    instance: str | None = option(
        None,
        env="MACHI_ALERTS_INSTANCE",
        help="name of this instance in the leader lease (default hostname-pid)",
    )
    lease_s: float = option(
        12.0,
        env="MACHI_ALERTS_LEASE_S",
        ge=2,
        le=60,
        help="leader lease; a standby takes over at most this long after the leader dies",
    )
    tick_s: float = option(
        0.25, env="MACHI_ALERTS_TICK_S", gt=0, le=10, help="escalation and retry check period"
    )
    api_base_url: str = option(
        "http://127.0.0.1:8000",
        env="MACHI_ALERTS_API_BASE_URL",
        help="care API base URL used in the link each notification carries",
    )
    include_values: bool = option(
        False,
        env="MACHI_ALERTS_INCLUDE_VALUES",
        help="put the triggering health value into notifications (off: no health data)",
    )
    hmac_secret: SecretStr | None = option(
        None,
        env="MACHI_ALERTS_HMAC_SECRET",
        help="secret of the signed webhook hmac+http(s):// (HMAC-SHA256)",
        secret=True,
        cli=False,
    )
    retry_base_s: float = option(
        2.0, env="MACHI_ALERTS_RETRY_BASE_S", gt=0, le=600, help="first retry delay of a channel"
    )
    retry_max_s: float = option(
        300.0, env="MACHI_ALERTS_RETRY_MAX_S", gt=0, le=3600, help="longest retry delay"
    )
    send_timeout_s: float = option(
        10.0, env="MACHI_ALERTS_SEND_TIMEOUT_S", gt=0, le=120, help="webhook request timeout"
    )
    senders: int = option(
        8, env="MACHI_ALERTS_SENDERS", ge=1, le=64, help="notifications sent concurrently"
    )
    dead_letter_file: Path = option(
        Path(".machi/alerts/rejected.jsonl"),
        env="MACHI_ALERTS_DEAD_LETTER_FILE",
        help="JSONL file of malformed alert messages (fsynced before the ack)",
    )
    metrics_port: int = option(
        9466,
        env="MACHI_ALERTS_METRICS_PORT",
        ge=-1,
        le=65535,
        help="Prometheus port (0 = any free port, -1 = off)",
    )
    metrics_host: str = option(
        "127.0.0.1", env="MACHI_ALERTS_METRICS_HOST", help="address of the metrics server"
    )
