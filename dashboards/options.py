"""``machi dashboards``' option table: one declaration per option (see contract.options)."""

from __future__ import annotations

from pydantic import SecretStr

from contract.options import InfluxOptions, option

__all__ = ["DashboardOptions", "DeployOptions"]


class DashboardOptions(InfluxOptions):
    """Options every ``machi dashboards`` action that talks to InfluxDB takes. (No care
    k here: the boards show the API's published care figures, protected by the API's
    own policy, ``MACHI_CARE_K`` and friends.)"""


class DeployOptions(DashboardOptions):
    """``machi dashboards deploy``: where Grafana is and how it reaches InfluxDB."""

    url: str = option("http://127.0.0.1:3000", env="MACHI_GRAFANA_URL", help="Grafana URL")
    token: SecretStr | None = option(
        None, env="MACHI_GRAFANA_TOKEN", help="Grafana service-account token", secret=True
    )
    user: str | None = option(None, env="MACHI_GRAFANA_USER", help="Grafana basic-auth user")
    password: SecretStr | None = option(
        None, env="MACHI_GRAFANA_PASSWORD", help="Grafana basic-auth password", secret=True
    )
    grafana_influx_url: str | None = option(
        None,
        env="MACHI_GRAFANA_INFLUX_URL",
        help="InfluxDB URL as Grafana's server reaches it (default: --influx-url)",
    )
