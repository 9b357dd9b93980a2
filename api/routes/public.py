"""The residents' page, open data and feedback (no key), and feedback moderation
(operator scope, audited): ``portal`` renders, this module speaks HTTP.

The portal reads the same KPI engine as ``/v1/kpis`` (``api.engine.theme``) over
aligned local days and weeks, precomputed in a background refresher; pages and files
carry ETag and Last-Modified and answer 304 to a matching If-None-Match.
"""

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.auth import Principal
from api.kpis import Window
from api.state import Api
from contract.rules import CARE_K_DEFAULT
from portal.aggregates import Snapshot
from portal.feedback import STATUSES
from portal.opendata import catalog, dictionary_csv, dictionary_rows, table_csv, table_json
from portal.options import PortalOptions
from portal.page import STATIC, FormState, page_path
from portal.service import FeedbackError, Portal
from portal.strings import THEMES_PUBLIC, t

_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
MAX_FORM_BYTES = 16 * 1024


def _http_date(d: datetime) -> str:
    return format_datetime(d, usegmt=True)


def _cached(
    request: Request,
    body: bytes,
    media_type: str,
    modified: datetime,
    tag: str | None = None,
    max_age: int = 60,
    weak: bool = False,
) -> Response:
    """200 with ETag/Last-Modified, or 304 when the client's If-None-Match matches
    (weak comparison, as RFC 9110 asks for If-None-Match)."""
    etag = ("W/" if weak else "") + f'"{tag or hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {
        "ETag": etag,
        "Last-Modified": _http_date(modified),
        "Cache-Control": f"public, max-age={max_age}, must-revalidate",
    }
    seen = [
        v.strip().removeprefix("W/") for v in request.headers.get("if-none-match", "").split(",")
    ]
    if etag.removeprefix("W/") in seen or "*" in seen:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def build(api: Api, opts: PortalOptions | None = None) -> APIRouter:
    # The residents' page never publishes care figures under the public default k, even
    # where a deployment lowered MACHI_CARE_K for its API.
    page_policy = api.engine.policy.at_least(CARE_K_DEFAULT)

    def compute(theme: str, start: datetime, end: datetime, site: str | None) -> dict[str, Any]:
        return api.engine.theme(theme, Window(start, end, site), policy=page_policy).as_dict()

    portal = Portal(opts or PortalOptions(), compute, api.site_ids, api.registry)
    api.portal = portal  # reachable from the app (tests read its snapshot)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        portal.start()
        try:
            yield
        finally:
            portal.stop()

    router = APIRouter(tags=["public page"], lifespan=lifespan)

    def snapshot(lang: str) -> Snapshot:
        snap = portal.snapshot
        if snap is None:
            raise HTTPException(
                503,
                t(lang, "preparing"),
                headers={"Retry-After": "5"},
            )
        return snap

    def html(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
        return Response(
            body, status_code=status, media_type="text/html; charset=utf-8", headers=headers
        )

    def page(request: Request, lang: str, site: str | None, sent: str | None) -> Response:
        snap = portal.snapshot
        if snap is None:
            return html(
                503,
                portal.renderer.simple(lang, portal.opts.portal_title, t(lang, "preparing")),
                {"Retry-After": "5"},
            )
        if site is not None and site not in snap.sites:
            return html(
                404, portal.renderer.simple(lang, t(lang, "not_found"), t(lang, "not_found"))
            )
        theme = sent if sent in THEMES_PUBLIC else None
        tag = portal.page_tag(snap, lang, site, theme or "")
        # Browsers keep no copy (no-store): every page carries fresh single-use form
        # tokens. Clients that send If-None-Match (monitors, crawlers) still get 304.
        body = b"" if f'"{tag}"' in request.headers.get("if-none-match", "") else None
        if body is None:
            body = portal.page(snap, lang, site, theme)
        resp = _cached(request, body, "text/html; charset=utf-8", snap.made_at, tag, weak=True)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Language"] = lang
        return resp

    Sent = Annotated[str | None, Query(max_length=16, description="theme just commented on")]

    @router.get("/", include_in_schema=False)
    def home_ja(request: Request, sent: Sent = None) -> Response:
        return page(request, "ja", None, sent)

    @router.get("/en/", include_in_schema=False)
    def home_en(request: Request, sent: Sent = None) -> Response:
        return page(request, "en", None, sent)

    @router.get("/districts/{site}/", include_in_schema=False)
    def district_ja(request: Request, site: str, sent: Sent = None) -> Response:
        return page(request, "ja", site, sent)

    @router.get("/en/districts/{site}/", include_in_schema=False)
    def district_en(request: Request, site: str, sent: Sent = None) -> Response:
        return page(request, "en", site, sent)

    @router.get("/static/{name}", include_in_schema=False)
    def static(request: Request, name: str) -> Response:
        path = STATIC / name
        # Only the files that are there, by exact name: no path from the request reaches
        # the file system beyond one listed entry.
        files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        if name not in files or path.suffix not in _STATIC_TYPES:
            raise HTTPException(404, f"no static file {name[:64]!r}")
        body = files[name].read_bytes()
        modified = datetime.fromtimestamp(files[name].stat().st_mtime).astimezone()
        return _cached(request, body, _STATIC_TYPES[path.suffix], modified, max_age=3600)

    # -- open data ------------------------------------------------------------------

    @router.get("/open-data/catalog.jsonld", include_in_schema=False)
    def dcat(request: Request) -> Response:
        """The DCAT catalog (JSON-LD) that CKAN and data.go.jp-style portals harvest."""
        snap = snapshot("en")
        base = portal.opts.portal_base_url or str(request.base_url)
        doc = catalog(snap, base, portal.opts.portal_title)
        body = json.dumps(doc, ensure_ascii=False, indent=1).encode()
        return _cached(request, body, "application/ld+json", snap.made_at)

    @router.get("/open-data/dictionary.csv", include_in_schema=False)
    def dictionary(request: Request) -> Response:
        """Every column of the tables: key, Japanese and English labels, unit, definition."""
        snap = snapshot("en")
        return _cached(request, dictionary_csv(), "text/csv; charset=utf-8", snap.made_at)

    @router.get("/open-data/dictionary.json", include_in_schema=False)
    def dictionary_json(request: Request) -> Response:
        snap = snapshot("en")
        body = json.dumps(dictionary_rows(), ensure_ascii=False).encode()
        return _cached(request, body, "application/json", snap.made_at)

    @router.get("/open-data/{theme}-{kind}.{ext}", include_in_schema=False)
    def table(request: Request, theme: str, kind: str, ext: str) -> Response:
        """A theme's daily or weekly aggregates per district, CSV (UTF-8) or JSON."""
        if (
            theme not in THEMES_PUBLIC
            or kind not in ("daily", "weekly")
            or ext not in ("csv", "json")
        ):
            raise HTTPException(
                404,
                "open data files are /open-data/{green|care|transit}-{daily|weekly}.{csv|json}",
            )
        snap = snapshot("en")
        if ext == "csv":
            body = table_csv(snap, theme, kind)
            resp = _cached(request, body, "text/csv; charset=utf-8", snap.made_at)
            resp.headers["Content-Disposition"] = f'inline; filename="{theme}-{kind}.csv"'
            return resp
        body = json.dumps(table_json(snap, theme, kind), ensure_ascii=False).encode()
        return _cached(request, body, "application/json", snap.made_at)

    # -- feedback -------------------------------------------------------------------

    @router.post("/feedback", include_in_schema=False)
    async def feedback_form(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            raise HTTPException(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(
                422, "the form must be UTF-8 application/x-www-form-urlencoded"
            ) from None
        fields = {k: v[0] for k, v in parsed.items()}
        lang = fields["lang"] if fields.get("lang") in ("ja", "en") else "ja"
        client = request.client.host if request.client else "unknown"
        try:
            done = portal.submit(fields, client)
        except FeedbackError as exc:
            headers = {}
            if exc.retry_after is not None:
                headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
            snap = portal.snapshot
            if exc.status != 422 or snap is None:
                heading = t(lang, "feedback_error")
                return html(exc.status, portal.renderer.simple(lang, heading, str(exc)), headers)
            page_site = fields.get("page") or None
            form = FormState(
                fields.get("theme", ""),
                error=str(exc),
                text=fields.get("text", "")[:2000],
                category=fields.get("category", ""),
                district=fields.get("district", ""),
            )
            return html(422, portal.render(snap, lang, page_site, form), headers)
        target = page_path(done.lang, done.page) + f"?sent={done.theme}#feedback-{done.theme}"
        return RedirectResponse(target, status_code=303)

    router.include_router(_moderation(api, portal))
    return router


def _moderation(api: Api, portal: Portal) -> APIRouter:
    router = APIRouter(prefix="/v1/feedback", tags=["feedback moderation"])
    Operator = Annotated[Principal, Depends(api.require("operator"))]
    ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="feedback item id")]

    def audit(who: Principal, action: str, **what: Any) -> None:
        api.audit.record(who.key_id, who.scope, action, **what)

    def found(item: Any, item_id: int) -> dict[str, Any]:
        if item is None:
            raise HTTPException(404, f"there is no feedback item {item_id}")
        out: dict[str, Any] = item.as_dict()
        return out

    @router.get("")
    def list_feedback(
        who: Operator,
        status: Annotated[str | None, Query(description=", ".join(STATUSES))] = "pending",
        theme: Annotated[str | None, Query(description=", ".join(THEMES_PUBLIC))] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Submissions (newest first), by default those awaiting moderation."""
        if status is not None and status not in STATUSES:
            raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
        items = portal.store.items(status, theme, limit)
        audit(who, "feedback.list", status=status, theme=theme, n=len(items))
        return {"items": [i.as_dict() for i in items], "counts": portal.store.counts()}

    @router.get("/{item_id}")
    def get_feedback(who: Operator, item_id: ItemId) -> dict[str, Any]:
        audit(who, "feedback.get", id=item_id)
        return found(portal.store.get(item_id), item_id)

    @router.post("/{item_id}/publish")
    def publish(who: Operator, item_id: ItemId) -> dict[str, Any]:
        """Show the item (and its reply, if any) on the page."""
        audit(who, "feedback.publish", id=item_id)
        return found(portal.store.moderate(item_id, "published", who.key_id), item_id)

    @router.post("/{item_id}/reject")
    def reject(who: Operator, item_id: ItemId) -> dict[str, Any]:
        """Never show the item (it is kept)."""
        audit(who, "feedback.reject", id=item_id)
        return found(portal.store.moderate(item_id, "rejected", who.key_id), item_id)

    @router.post("/{item_id}/answer")
    def answer(
        who: Operator,
        item_id: ItemId,
        reply: Annotated[str, Body(embed=True, min_length=1, max_length=4000)],
    ) -> dict[str, Any]:
        """Set the city's reply (shown once the item is published)."""
        try:
            item = portal.answer(item_id, reply, who.key_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        audit(who, "feedback.answer", id=item_id, chars=len(reply))
        return found(item, item_id)

    return router
