"""Ingest: MQTT telemetry -> validated, batched line protocol -> InfluxDB, exactly once.

A message is acknowledged to the broker only after every reading in it is stored (or,
if it is bad, after it is durably dead-lettered), so a crash or an outage never loses
data; writes are idempotent, so redelivery never doubles it.
"""
