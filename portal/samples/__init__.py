"""Sample configuration of the residents' page (tested in tests/portal/test_options.py)."""

from pathlib import Path

SAMPLE_TARGETS = Path(__file__).parent / "targets.toml"
