"""Options of the residents' page, open data and feedback (served by ``machi api``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from contract.options import Options, option
from contract.settings import ConfigError

__all__ = ["PortalOptions"]


class PortalOptions(Options):
    """The public page: what it shows, where feedback is kept, how floods are limited."""

    portal_title: str = option(
        "machi 見える化", env="MACHI_PORTAL_TITLE", help="site title shown on the page"
    )
    portal_targets: Path | None = option(
        None,
        env="MACHI_PORTAL_TARGETS",
        help="TOML file of the city's targets and district names (see portal/samples/)",
    )
    portal_days: int = option(
        14, env="MACHI_PORTAL_DAYS", help="days of daily figures published", ge=1, le=92
    )
    portal_weeks: int = option(
        6, env="MACHI_PORTAL_WEEKS", help="weeks of weekly figures published", ge=1, le=53
    )
    portal_refresh_s: float = option(
        300.0,
        env="MACHI_PORTAL_REFRESH_S",
        help="seconds between recomputations of the public aggregates",
        ge=1,
    )
    portal_recheck_s: float = option(
        1800.0,
        env="MACHI_PORTAL_RECHECK_S",
        help="seconds a finished period's figures are reused before they are computed "
        "again (late data shows up within this; 0 = every round)",
        ge=0,
    )
    portal_base_url: str = option(
        "",
        env="MACHI_PORTAL_BASE_URL",
        help="public URL of the site for the DCAT catalog (default: from the request)",
    )
    feedback_db: str = option(
        "sqlite:///.machi/portal/feedback.db",
        env="MACHI_PORTAL_FEEDBACK_DB",
        help="feedback store URL: sqlite:///path or postgresql+psycopg://user:pass@host/db",
    )
    feedback_secret: SecretStr | None = option(
        None,
        env="MACHI_PORTAL_FEEDBACK_SECRET",
        help="HMAC key of the form tokens (default: random per process)",
        secret=True,
        cli=False,
    )
    feedback_min_fill_s: float = option(
        3.0,
        env="MACHI_PORTAL_FEEDBACK_MIN_FILL_S",
        help="a form sent sooner than this after it was served is refused as a bot",
        ge=0,
        le=600,
    )
    feedback_per_client: int = option(
        5,
        env="MACHI_PORTAL_FEEDBACK_PER_CLIENT",
        help="submissions allowed per client address per rate window",
        ge=1,
    )
    feedback_window_s: float = option(
        600.0,
        env="MACHI_PORTAL_FEEDBACK_WINDOW_S",
        help="length of the per-client rate window in seconds",
        ge=1,
    )

    def model_post_init(self, context: Any, /) -> None:
        if self.portal_targets is not None and not self.portal_targets.is_file():
            raise ConfigError(
                f"--portal-targets / MACHI_PORTAL_TARGETS = {str(self.portal_targets)!r}: "
                "no such file (see portal/samples/targets.toml)"
            )
        if self.portal_base_url and not self.portal_base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--portal-base-url / MACHI_PORTAL_BASE_URL = {self.portal_base_url!r}: "
                "give an http(s):// URL"
            )
