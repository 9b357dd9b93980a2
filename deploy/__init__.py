"""machi's shipped server configuration (Mosquitto, InfluxDB, compose), as package data.

It is a package only so that a plain ``pip install .`` carries these files: the demo,
the tests and the benchmarks read them through :data:`ROOT` from any folder.
"""

from __future__ import annotations

from pathlib import Path

#: The folder holding ``mosquitto/``, ``influxdb/`` and ``compose/``.
ROOT = Path(__file__).resolve().parent
