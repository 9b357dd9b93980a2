"""Prometheus view of the API's background loops (``contract.periodic.Periodic``).

The KPI refresher, the care publisher, the slot-boundary writer and the portal's
refresher each run on their own thread; when one keeps failing, the boards or the
residents' page go stale without any request failing. Their rounds, failures and the
length of the last round are exported per loop, read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from contract.periodic import Periodic

__all__ = ["BackgroundCollector"]


class BackgroundCollector(Collector):
    """``machi_api_background_*{loop}`` for the loops ``loops()`` returns now."""

    def __init__(self, loops: Callable[[], Iterable[Periodic | None]]) -> None:
        self.loops = loops

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        rounds = CounterMetricFamily(
            "machi_api_background_rounds",
            "completed rounds of each background loop",
            labels=["loop"],
        )
        failures = CounterMetricFamily(
            "machi_api_background_failures",
            "failed rounds of each background loop (InfluxDB errors; the loop goes on)",
            labels=["loop"],
        )
        last = GaugeMetricFamily(
            "machi_api_background_last_round_seconds",
            "duration of each background loop's last completed round",
            labels=["loop"],
        )
        for loop in self.loops():
            if loop is None:
                continue
            rounds.add_metric([loop.name], loop.rounds)
            failures.add_metric([loop.name], loop.failures)
            last.add_metric([loop.name], loop.last_round_s)
        yield rounds
        yield failures
        yield last
