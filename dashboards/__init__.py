"""Grafana dashboards for machi, built as code with grafana-foundation-sdk.

``boards`` defines the dashboards, ``export`` writes their JSON, ``deploy`` pushes them
to a running Grafana; ``machi dashboards`` is the CLI.
"""
