"""machi: the city's IoT data platform. This package holds the CLI and the tooling
(local servers, simulator, benchmarks, demo) that drives the components."""

__version__ = "0.1.0"
