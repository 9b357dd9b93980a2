"""Storage confirmations (contract §7): after a batch is stored, tell each device's agent
which of its seqs are now durable (or dead-lettered) on ``{prefix}/v1/stored/{device_id}``.

QoS 1 not for delivery (agents subscribe with QoS 0 on non-persistent sessions, and a
lost confirmation only costs a re-send, stored idempotently) but for the PUBACK's reason
code: mosquitto 2.0 drops a client after ANY publish its ACL denies, QoS 0 included, so a
broker without the ``stored/#`` grant would cut ingest off after every batch. A refused
confirmation switches them off instead.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from contract.confirm import StoredConfirmation, encode_confirmation, to_ranges
from contract.topics import Topics

log = logging.getLogger("machi.ingest")
Key = tuple[str, int]  # (device_id, seq) of a telemetry message


class Confirmer:
    """Publishes confirmations and watches their PUBACKs; off for good once one is refused."""

    def __init__(self, client: mqtt.Client, topics: Topics, enabled: bool = True) -> None:
        self.client = client
        self.topics = topics
        self.enabled = enabled
        self._lock = threading.Condition()
        self._mids: set[int] = set()  # our publishes awaiting their PUBACK
        self._refused: collections.deque[int] = collections.deque(maxlen=1000)
        self.max_inflight = 65535  # the broker's Receive Maximum

    def connected(self, receive_maximum: int) -> None:
        """A new connection: publishes of the old one will not be acknowledged on it."""
        with self._lock:
            self.max_inflight = max(1, min(receive_maximum, 65535))
            self._mids.clear()
            self._lock.notify_all()

    def confirm(self, outcomes: Iterable[tuple[Key, bool]]) -> int:
        """Confirm ``((device_id, seq), dead)`` outcomes of one stored batch, one message
        per device; returns how many confirmations were published."""
        if not self.enabled:
            return 0
        stored: dict[str, set[int]] = {}
        dead: dict[str, set[int]] = {}
        for (device_id, seq), is_dead in outcomes:
            (dead if is_dead else stored).setdefault(device_id, set()).add(seq)
        sent = 0
        for device_id in stored.keys() | dead.keys():
            ok = stored.get(device_id, set())
            msg = StoredConfirmation(
                device_id,
                seqs=to_ranges(ok),
                # A copy that was stored wins over a refused copy of the same seq.
                deadlettered=to_ranges(dead.get(device_id, set()) - ok),
            )
            with self._lock:
                # Never more in flight than the broker accepts (it would disconnect us).
                # PUBACKs not coming within a second (a dead link) are not worth
                # stalling the writer for: the rest of this batch goes unconfirmed and
                # the agents re-send, which is stored idempotently.
                if not self._lock.wait_for(lambda: len(self._mids) < self.max_inflight, 1.0):
                    return sent
            info = self.client.publish(
                self.topics.stored(device_id), encode_confirmation(msg), qos=1
            )
            with self._lock:
                self._mids.add(info.mid)
                refused = info.mid in self._refused  # the PUBACK beat us here
            if refused:
                self._switch_off(device_id)
                return sent
            sent += 1
        return sent

    def on_publish(self, mid: int, reason_code: ReasonCode) -> None:
        """Called from paho's ``on_publish`` (its outgoing lock held: only our short lock
        is taken here)."""
        with self._lock:
            ours = mid in self._mids
            self._mids.discard(mid)
            self._lock.notify_all()
            if reason_code.is_failure:
                self._refused.append(mid)
        if reason_code.is_failure:
            if ours:
                self._switch_off(str(mid))
            else:
                log.error("broker refused a dead-letter publish: %s (check the ACL)", reason_code)

    def _switch_off(self, what: str) -> None:
        if not self.enabled:
            return
        self.enabled = False
        log.error(
            "the broker refused a storage confirmation (%s): confirmations are OFF until "
            "restart. Grant the ingest account 'topic write %s/v1/stored/#' in the broker ACL "
            "(machi devices export does), or run with --no-confirm; edge agents with "
            "require_confirmation keep re-sending until then",
            what,
            self.topics.prefix,
        )
