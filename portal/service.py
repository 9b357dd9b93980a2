"""The portal as one object: aggregates refresher, feedback store, spam guards, renderer.

The API builds it with a ``compute`` callable (its KPI engine) and a ``sites`` callable;
the portal never imports the API. HTTP concerns (status codes, headers) stay in
``api/routes/public.py``; this module says what happened.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from portal.aggregates import Builder, Compute, Refresher, Snapshot
from portal.antispam import FormTokens, RateLimiter, TokenError
from portal.feedback import MAX_REPLY, MAX_TEXT, FeedbackStore, Item
from portal.options import PortalOptions
from portal.page import FormState, Renderer
from portal.strings import CATEGORIES, LANGS, THEMES_PUBLIC
from portal.targets import load_targets

__all__ = ["FeedbackError", "Portal", "Submitted", "clean_text"]

#: Stand-ins for the form tokens in a cached page (tokens are [0-9a-f.], never escaped).
_PLACEHOLDERS: Final = {th: f"@@form-token-{th}@@" for th in THEMES_PUBLIC}

#: Characters a comment may contain besides printable ones.
_ALLOWED_CONTROLS: Final = {"\n", "\t"}


class FeedbackError(ValueError):
    """A submission that is refused: ``status`` is the HTTP answer (404, 422, 429)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Submitted:
    id: int
    theme: str
    lang: str
    page: str | None


def clean_text(raw: str, limit: int, what: str) -> str:
    """Normalised (NFC, CRLF -> LF), stripped text of 1..limit characters, or ValueError."""
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not text:
        raise ValueError(f"the {what} is empty: write 1 to {limit} characters")
    if len(text) > limit:
        raise ValueError(f"the {what} has {len(text)} characters; the limit is {limit}")
    bad = [
        c for c in text if unicodedata.category(c) in ("Cc", "Cs") and c not in _ALLOWED_CONTROLS
    ]
    if bad:
        raise ValueError(f"the {what} contains control characters: remove them")
    return text


class Portal:
    def __init__(
        self,
        opts: PortalOptions,
        compute: Compute,
        sites: Callable[[], list[str]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.opts = opts
        self.targets = load_targets(opts.portal_targets)
        self.builder = Builder(
            compute,
            sites,
            opts.portal_days,
            opts.portal_weeks,
            recheck=timedelta(seconds=opts.portal_recheck_s),
        )
        self.refresher = Refresher(self.builder, opts.portal_refresh_s)
        self.store = FeedbackStore(opts.feedback_db)
        secret = opts.feedback_secret
        self.tokens = FormTokens(
            secret.get_secret_value().encode() if secret is not None else None,
            opts.feedback_min_fill_s,
        )
        self.limiter = RateLimiter(opts.feedback_per_client, opts.feedback_window_s)
        self.renderer = Renderer(opts.portal_title, self.targets)
        self.nonce = secrets.token_hex(4)  # tells page ETags of two processes apart
        self._rendered: dict[tuple[str, str | None, str], tuple[str, str]] = {}
        self.outcomes = Counter(
            "machi_portal_feedback_total",
            "feedback submissions by outcome",
            ["outcome"],
            registry=registry,
        )

    def start(self) -> None:
        self.refresher.start()

    def stop(self) -> None:
        self.refresher.stop()
        self.store.close()

    @property
    def snapshot(self) -> Snapshot | None:
        return self.refresher.snapshot

    # -- pages ----------------------------------------------------------------------

    def page_tag(self, snap: Snapshot, lang: str, site: str | None, extra: str = "") -> str:
        """A weak validator of a page: data, moderated feedback, language, district (the
        form tokens differ in every response; they are not part of it)."""
        raw = f"{snap.etag}|{self.nonce}|{self.store.version}|{lang}|{site}|{extra}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def render(
        self, snap: Snapshot, lang: str, site: str | None, form: FormState | None = None
    ) -> str:
        """The page rendered now, with fresh form tokens."""
        return self._tokens_in(self._render(snap, lang, site, form))

    def page(self, snap: Snapshot, lang: str, site: str | None, sent: str | None) -> bytes:
        """The page for a GET: rendered once per validator, fresh form tokens each time."""
        tag = self.page_tag(snap, lang, site, sent or "")
        key = (lang, site, sent or "")
        hit = self._rendered.get(key)
        if hit is None or hit[0] != tag:
            form = FormState(sent, sent=True) if sent else None
            hit = (tag, self._render(snap, lang, site, form))
            self._rendered[key] = hit
        return self._tokens_in(hit[1]).encode()

    def _render(self, snap: Snapshot, lang: str, site: str | None, form: FormState | None) -> str:
        feedback = {th: self.store.published(th, site) for th in THEMES_PUBLIC}
        return self.renderer.page(snap, lang, site, feedback, _PLACEHOLDERS, form)

    def _tokens_in(self, html: str) -> str:
        for th, mark in _PLACEHOLDERS.items():
            html = html.replace(mark, self.tokens.issue(th))
        return html

    # -- feedback -------------------------------------------------------------------

    def submit(self, fields: Mapping[str, str], client: str) -> Submitted:
        """Validate and store one form submission; FeedbackError says why not.

        Refused submissions (honeypot, token, bad text) are stored with status
        ``refused`` and their reason, so nothing a resident sends is silently lost.
        """
        retry = self.limiter.hit(client)
        if retry:
            self.outcomes.labels("rate_limited").inc()
            raise FeedbackError(
                429, f"too many comments from this address: try again in {retry:.0f} s", retry
            )
        theme = fields.get("theme", "")
        lang = fields.get("lang", "ja") if fields.get("lang") in LANGS else "ja"
        snap = self.snapshot
        sites = set(snap.sites) if snap is not None else set()
        page = fields.get("page") or None
        if theme not in THEMES_PUBLIC:
            self.outcomes.labels("unknown_theme").inc()
            raise FeedbackError(404, f"there is no theme {theme[:40]!r}")
        district = fields.get("district") or None
        for value in (district, page):
            if value is not None and value not in sites:
                self.outcomes.labels("unknown_district").inc()
                raise FeedbackError(404, f"there is no district {value[:64]!r}")
        category = fields.get("category") or None
        raw = fields.get("text", "")

        # Kept as sent, bounded; NUL (which PostgreSQL text cannot hold) made visible.
        kept = raw[: MAX_TEXT * 2].replace("\x00", "\ufffd")

        def refuse(reason: str, message: str) -> FeedbackError:
            self.store.add(theme, district, None, lang, kept, "refused", reason)
            self.outcomes.labels(reason).inc()
            return FeedbackError(422, message)

        if fields.get("website"):
            # A bot filled the hidden field. It is told nothing it could learn from.
            self.store.add(theme, district, None, lang, kept, "refused", "honeypot")
            self.outcomes.labels("honeypot").inc()
            return Submitted(0, theme, lang, page)
        try:
            self.tokens.check(fields.get("token", ""), theme)
        except TokenError as exc:
            raise refuse("token", str(exc)) from None
        if category is not None and category not in CATEGORIES:
            raise refuse("category", f"the category must be one of {', '.join(CATEGORIES)}")
        try:
            text = clean_text(raw, MAX_TEXT, "comment")
        except ValueError as exc:
            raise refuse("text", str(exc)) from None
        item_id = self.store.add(theme, district, category, lang, text)
        self.outcomes.labels("stored").inc()
        return Submitted(item_id, theme, lang, page)

    def answer(self, item_id: int, reply: str, by: str) -> Item | None:
        return self.store.answer(item_id, clean_text(reply, MAX_REPLY, "reply"), by)
