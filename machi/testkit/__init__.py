"""The testkit: the one way tests, the demo and the benchmarks start servers and machi
processes, publish at QoS 1, wait for a condition and read back what was stored.

- :mod:`machi.testkit.wait`: :func:`wait_for` (raises on timeout) and :func:`wait_until`
  (returns the last value);
- :mod:`machi.testkit.publish`: :class:`Publisher`, at-least-once QoS 1 publishing;
- :mod:`machi.testkit.stored`: counts of points in InfluxDB;
- :mod:`machi.testkit.edge`: a whole edge stack (pty GPS receivers, ``machi edge run``,
  ``machi ingest``) for end-to-end and fault tests;
- servers and machi processes: :mod:`machi.servers`.
"""

from machi.testkit.publish import Publisher
from machi.testkit.stored import stored, stored_total
from machi.testkit.wait import wait_for, wait_until

__all__ = ["Publisher", "stored", "stored_total", "wait_for", "wait_until"]
