"""MQTT topic layout of contract v1.

Topic levels that come from outside (device ids, kinds) are validated against the id
pattern before use, so nothing can add a level or a wildcard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contract.ids import ID_RE, check_id

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


@dataclass(frozen=True)
class Topics:
    """Builds and parses the topics under one prefix (default ``city``)."""

    prefix: str = "city"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"topic prefix {self.prefix!r} is invalid: use levels of letters, digits, "
                "'_', '.', '-' separated by '/', with no wildcards"
            )

    def telemetry(self, kind: str, device_id: str) -> str:
        return f"{self.prefix}/v1/telemetry/{check_id(kind, 'kind')}/{check_id(device_id)}"

    def telemetry_filter(self, kind: str = "+") -> str:
        return f"{self.prefix}/v1/telemetry/{kind}/+"

    def status(self, agent_id: str) -> str:
        return f"{self.prefix}/v1/status/{check_id(agent_id, 'agent_id')}"

    def alert(self, theme: str, device_id: str) -> str:
        return f"{self.prefix}/v1/alerts/{check_id(theme, 'theme')}/{check_id(device_id)}"

    def stored(self, device_id: str) -> str:
        """Storage confirmations for one device (see ``contract.confirm``)."""
        return f"{self.prefix}/v1/stored/{check_id(device_id)}"

    def deadletter(self, reason: str) -> str:
        return f"{self.prefix}/v1/deadletter/{check_id(reason, 'reason')}"

    def parse_telemetry(self, topic: str) -> tuple[str, str] | None:
        """Return ``(kind, device_id)`` for a telemetry topic, or None if it is not one."""
        head = f"{self.prefix}/v1/telemetry/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :].split("/")
        if len(rest) != 2 or not all(ID_RE.match(p) for p in rest):
            return None
        return rest[0], rest[1]
