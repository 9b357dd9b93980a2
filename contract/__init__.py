"""The machi wire contract v1: topics, payload schema, InfluxDB schema and shared settings.

Every component imports this package and nothing else of the project's, so that data
flows one way: firmware_bridge -> edge -> ingest -> api/dashboards.
"""
