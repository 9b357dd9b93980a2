"""The option tables (contract.options): one declaration per option, and the bugs that
declaring options three times had caused (each test names the bug it pins)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from api.options import ApiOptions
from contract.options import load_options
from contract.rules import CARE_K_MIN, ON_TIME_EARLY_S, ON_TIME_LATE_S, SOURCE_TYPES
from contract.settings import ConfigError
from ingest.options import IngestOptions
from machi import options_table
from machi.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def machi(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MACHI_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "machi.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=ROOT,
    )


def test_readme_table_is_generated_and_current() -> None:
    text = (ROOT / "README.md").read_text()
    assert options_table.current(text) == options_table.render(), (
        "README.md's configuration table is stale: run `python -m machi.options_table`"
    )
    # Every variable of every table is there (was 18 of about 43; MACHI_GTFS,
    # MACHI_INGEST_BATCH_LINES and MACHI_MQTT_PROTOCOL were in no doc).
    for _component, cls in options_table.tables():
        for info in cls.model_fields.values():
            assert f"`{info.validation_alias}`" in text
    for var in ("MACHI_GTFS", "MACHI_INGEST_BATCH_LINES", "MACHI_MQTT_PROTOCOL"):
        assert f"`{var}`" in text


def test_precedence_is_per_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # Was: `--max-past-s 100` with MACHI_MAX_FUTURE_S=900 silently reset the future to 300.
    monkeypatch.setenv("MACHI_MAX_FUTURE_S", "900")
    monkeypatch.setenv("MACHI_INGEST_BATCH_LINES", "7")
    args = build_parser().parse_args(["ingest", "--max-past-s", "100", "--batch-lines", "9"])
    cfg = load_options(IngestOptions, args).config()
    assert cfg.limits.max_past_ms == 100_000
    assert cfg.limits.max_future_ms == 900_000  # env, untouched by the other flag
    assert cfg.batch_lines == 9  # the flag beats its variable


def test_every_flag_names_its_variable_in_help() -> None:
    # Was: `machi ingest --help` said every flag reads a MACHI_* variable; six did not.
    out = machi("ingest", "--help").stdout
    for name, info in IngestOptions.model_fields.items():
        if info.json_schema_extra and info.json_schema_extra.get("cli") is False:  # type: ignore[union-attr]
            continue
        assert str(info.validation_alias) in out, name
    assert "default 5000" in out  # defaults shown


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["ingest", "--batch-lines", "-5"], {}, "--batch-lines / MACHI_INGEST_BATCH_LINES"),
        (["ingest"], {"MACHI_INGEST_WRITERS": "0"}, "--writers / MACHI_INGEST_WRITERS"),
        (["ingest", "--mqtt-protocol", "4"], {}, "--mqtt-protocol / MACHI_MQTT_PROTOCOL"),
        (["ingest", "--metrics-port", "70000"], {}, "--metrics-port / MACHI_METRICS_PORT"),
        (["api", "--port", "0"], {}, "--port / MACHI_API_PORT"),
        (["events", "run", "--spo2-low", "150"], {}, "--spo2-low / MACHI_CARE_SPO2_LOW"),
        (["ingest", "--mqtt-url", "http://x"], {}, "--mqtt-url / MACHI_MQTT_URL"),
    ],
)
def test_bad_values_are_refused_at_start_in_one_line(
    argv: list[str], env: dict[str, str], names: str
) -> None:
    # Was: `machi ingest --batch-lines -5` started.
    r = machi(*argv, "--print-config", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_rollup_with_a_bad_start_is_a_user_error() -> None:
    # Was: `machi api rollup` with an unparsable --start ended in a traceback.
    r = machi("api", "rollup", "--start", "yesterday", "--end", "2024-05-01T00:00:00Z")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--start='yesterday' is not an RFC 3339 timestamp" in r.stderr


def test_care_k_has_one_rule_for_the_api_and_the_dashboards() -> None:
    # Was: MACHI_CARE_K=1 was accepted by the API and refused by `machi dashboards`. The
    # boards now show only what the API's care publisher wrote at the API's k.
    r = machi("api", "--print-config", env={"MACHI_CARE_K": "1"})
    assert r.returncode == 2 and "MACHI_CARE_K" in r.stderr, r.stderr
    assert "MACHI_CARE_K" not in machi("dashboards", "verify", "--help").stdout
    with pytest.raises(ConfigError, match="MACHI_CARE_K"):
        load_options(ApiOptions, care_k=CARE_K_MIN - 1)
    assert load_options(ApiOptions, care_k=CARE_K_MIN).kpi_config().care_k == CARE_K_MIN


def test_on_time_window_and_source_types_have_one_definition() -> None:
    from api.config import KpiConfig
    from dashboards.queries import ON_TIME_WINDOW
    from edge.config import MULTI_DEVICE_TYPES
    from firmware_bridge.registry import DRIVERS

    assert (KpiConfig().on_time_early_s, KpiConfig().on_time_late_s) == (
        ON_TIME_EARLY_S,
        ON_TIME_LATE_S,
    )
    assert ON_TIME_WINDOW == (-ON_TIME_EARLY_S, ON_TIME_LATE_S)
    # Was: edge/config.py and firmware_bridge/registry.py disagreed on whether a gateway
    # needs a device_id.
    assert set(DRIVERS) == set(SOURCE_TYPES)
    assert set(MULTI_DEVICE_TYPES) == {n for n, t in SOURCE_TYPES.items() if t.multi_device}


def test_gateway_without_device_id_is_accepted_by_agent_and_driver(tmp_path: Path) -> None:
    from edge.config import parse_config
    from firmware_bridge.registry import make_source

    src = {
        "type": "ble_gateway_mqtt",
        "site": "kita",
        "mqtt_url": "mqtt://127.0.0.1:1",
        "topic": "gw",
        "devices": {"aa:bb:cc:dd:ee:ff": "wear-1"},
    }
    doc = {
        "agent": {"id": "a1", "site": "kita"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "outbox": {"path": str(tmp_path / "o.db"), "max_bytes": 1_000_000},
        "sources": [src],
    }
    (spec,) = parse_config(doc).sources
    assert spec.device_id is None
    make_source(spec.raw)


def test_print_config_redacts_secrets() -> None:
    env = {
        "MACHI_API_KEYS": "supersecretkey-0123456789:public",
        "MACHI_INFLUX_PASSWORD": "influx-pw-xyz",
        "MACHI_MQTT_URL": "mqtt://ingest:mqtt-pw-xyz@127.0.0.1:1883",
    }
    for argv in (["api"], ["ingest"], ["events", "run"]):
        r = machi(*argv, "--print-config", env=env)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert "xyz" not in r.stdout and "supersecret" not in r.stdout
        assert doc.get("influx_password") == "***"


def test_edge_print_config_redacts_source_credentials(tmp_path: Path) -> None:
    # Was: only keys named *password*/*secret*/*token* were hidden, so a B-route id and a
    # gateway's mqtt_url with a password in it were printed as they are.
    conf = tmp_path / "edge.toml"
    conf.write_text(
        "[agent]\n"
        'id = "gw-1"\n'
        'site = "kofu"\n'
        "[mqtt]\n"
        'url = "mqtt://gw-1:uplink-pw-xyz@127.0.0.1:1883"\n'
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        "[[sources]]\n"
        'type = "ble_gateway_mqtt"\n'
        'device_id = "omg-1"\n'
        'site = "kofu"\n'
        'mqtt_url = "mqtt://omg:local-pw-xyz@127.0.0.1:1883"\n'
        'topic = "home"\n'
        "[[sources]]\n"
        'type = "echonet_broute"\n'
        'device_id = "meter-1"\n'
        'site = "kofu"\n'
        'port = "/dev/null"\n'
        'broute_id = "00112233445566778899AABBCCDDxyzF"\n'
        'broute_password = "0123456789xyz"\n'
    )
    r = machi("edge", "check", "--config", str(conf), "--print-config")
    assert r.returncode == 0, r.stderr
    assert "xyz" not in r.stdout
    assert "mqtt://omg:***@127.0.0.1:1883" in r.stdout


def test_version() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
