"""Property-based fuzzing of every route from the OpenAPI spec: no input may cause a 5xx.

The schema comes from the live ASGI app over a real influxd; each operation's case
strategy is drawn by hypothesis (schemathesis' pytest plugin is not used because its
lazy fixture loader fails on this pytest version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.config import ApiConfig, KpiConfig
from contract.influx import InfluxV1
from contract.settings import Settings

pytestmark = pytest.mark.integration

OPERATOR = "operator-key-0123456789"


def test_no_server_errors_on_any_route(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    cfg = ApiConfig(keys=f"{OPERATOR}:operator", audit_log=tmp_path / "a.jsonl", cache_ttl_s=0)
    app = create_app(settings, cfg, KpiConfig(), alerts_db=f"sqlite:///{tmp_path}/alerts.db")
    # Cases are sent through FastAPI's TestClient: schemathesis' own requests transport
    # breaks when urllib3-future (pulled in by niquests) replaces urllib3 in the venv.
    client = TestClient(app)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/v1/kpis", "/v1/kpis/{theme}", "/v1/alerts", "/v1/devices"} <= paths
    seen: list[int] = []

    for op in operations:

        @given(case=op.as_strategy())
        @hsettings(
            max_examples=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def run(case: Any) -> None:
            kw = case.as_transport_kwargs(
                base_url="http://testserver", headers={"Authorization": f"Bearer {OPERATOR}"}
            )
            response = client.request(
                kw["method"], kw["url"], params=kw.get("params"), headers=kw.get("headers")
            )
            case.validate_response(response, checks=[not_a_server_error])
            seen.append(response.status_code)

        run()
    assert seen and max(seen) < 500
    assert 200 in seen and 422 in seen  # both valid and invalid inputs were generated


def test_spec_has_examples_and_security(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, ApiConfig(audit_log=tmp_path / "a.jsonl"), KpiConfig())
    spec = app.openapi()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    theme = spec["components"]["schemas"]["ThemeModel"]
    assert theme["examples"][0]["kpis"][0]["unit"] == "kWh"
