"""Derived events: care alerts and bus stop arrivals computed from telemetry.

A sibling worker of ingest (``machi events run``): it reads the same telemetry stream
with its own persistent MQTT session and writes ``care_alert`` and ``bus_arrival``
points (see ``contract.events``), acknowledging each message only after its derived
events are stored.
"""
