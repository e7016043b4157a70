"""The dashboard's pages and the fragments its scripts refresh them with."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cove import __version__
from cove.engine.keys import SEPARATOR, qualify
from cove.errors import CoveError, NotFoundError
from cove.sdk.file import File
from cove.server import applications, auth, observe, request_records, requests
from cove.server.errors import STATUS_OF
from cove.server.ui.gantt import layout

router = APIRouter(prefix="/ui", include_in_schema=False)
STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
PARTS = ("summary", "timeline", "output", "state", "metrics")
INLINE_OUTPUT = 64 * 1024  # JSON outputs up to this size are shown; larger ones linked

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals.update(ui="/ui", version=__version__, statuses=STATUSES)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _when(value: str | None) -> str:
    """An ISO time as the dashboard shows it: date and time to the millisecond, UTC."""
    if not value:
        return "—"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _took(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "—"
    return _seconds((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())


def _number(value: float) -> str:
    """A number as JavaScript's String() writes it (33.3, 100), so live updates match."""
    return f"{value:.12g}"


templates.filters.update(pretty=_pretty, when=_when, seconds=_seconds, number=_number)
templates.globals.update(took=_took)


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status_code)


def _engine_name(request: Request, app: str) -> str:
    """The engine's name of ``app`` in the caller's namespace (as the API guard routes it)."""
    if SEPARATOR in app:  # an engine name: no client may name it directly
        raise NotFoundError(f"application {app!r} is not deployed")
    return qualify(auth.principal(request).namespace, app)


def _problem(err: CoveError) -> HTMLResponse:
    """An error page with the status the JSON API gives the same error."""
    return render("error.html", status_code=STATUS_OF.get(err.code, 500), error=err)


# -- applications -----------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """Every application with its functions and their pools."""
    listed = await applications.list_applications(request)
    apps = []
    for a in sorted(listed["applications"], key=lambda a: a["name"]):
        pools = await applications.functions(_engine_name(request, a["name"]), request)
        apps.append({**a, "pools": pools["functions"]})
    return render("home.html", apps=apps)


@router.get("/apps/{app}", response_class=HTMLResponse)
async def application_page(app: str, request: Request) -> Response:
    """One application: its parameters, functions and pools, and its latest requests."""
    try:
        name = _engine_name(request, app)
        described = await applications.get_application(name, request)
        pools = await applications.functions(name, request)
        recent = await requests.list_requests(name, request, limit=10, cursor=None, status=None)
    except CoveError as err:
        return _problem(err)
    return render(
        "application.html",
        app=described,
        pools=pools["functions"],
        capacity=pools["capacity"],
        recent=recent["requests"],
    )


@router.get("/apps/{app}/requests", response_class=HTMLResponse)
async def requests_page(
    app: str,
    request: Request,
    status: str | None = Query(None),
    cursor: str | None = Query(None),
    limit: int = Query(20, ge=1, le=200),
) -> Response:
    """The application's requests, newest first, filtered by status, a page at a time."""
    status = status or None
    if status is not None and status not in STATUSES:
        return render(
            "error.html",
            status_code=400,
            error=CoveError(f"unknown status {status!r}: one of {', '.join(STATUSES)}"),
        )
    try:
        name = _engine_name(request, app)
        page = await requests.list_requests(
            name, request, limit=limit, cursor=cursor, status=status
        )
    except CoveError as err:
        return _problem(err)
    return render(
        "requests.html",
        app=app,
        rows=page["requests"],
        status=status,
        cursor=cursor,
        next_cursor=page["next_cursor"],
        limit=limit,
    )


# -- a request --------------------------------------------------------------------------------
async def _part(request: Request, app: str, rid: str, part: str) -> dict[str, Any]:
    """What one section of the request page shows."""
    name = _engine_name(request, app)
    if part == "summary":
        detail = await requests.get_request(name, rid, request)
        return {"detail": detail, "progress": _latest_progress(detail["progress"])}
    if part == "timeline":
        timeline = await observe.timeline(name, rid, request)
        created = datetime.fromisoformat(timeline["created_at"]).timestamp()
        return {"timeline": timeline, "chart": layout(timeline, time.time() - created)}
    if part == "output":
        return {"output": await _output(request, name, rid)}
    if part == "state":
        return {"state": (await request_records.get_state(name, rid, request))["state"]}
    if part == "metrics":
        return {"metrics": (await observe.request_metrics(name, rid, request))["metrics"]}
    raise NotFoundError(f"the request page has no part {part!r}")


def _latest_progress(progress: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not progress:
        return None
    latest = max(progress, key=lambda p: p["at"] or "")
    total = latest["total"] or 0
    percent = max(0.0, min(100.0, 100.0 * latest["current"] / total)) if total else 0.0
    return {**latest, "percent": round(percent, 1)}


async def _output(request: Request, name: str, rid: str) -> dict[str, Any]:
    outcome = await requests._outcome(request, name, rid)
    shown: dict[str, Any] = {"status": outcome.status, "content_type": outcome.content_type}
    data = outcome.output
    json_type = (outcome.content_type or "application/json").startswith("application/json")
    if outcome.status == "succeeded" and json_type and isinstance(data, bytes):
        if len(data) <= INLINE_OUTPUT:
            shown["json"] = _pretty(json.loads(data))
        shown["size"] = len(data)
    elif outcome.status == "succeeded" and data is not None:
        shown["size"] = data.size if not isinstance(data, bytes) else len(data)
    shown["file"] = outcome.status == "succeeded" and not json_type
    return shown


@router.get("/apps/{app}/requests/{rid}", response_class=HTMLResponse)
async def request_page(
    app: str, rid: str, request: Request, function: str | None = Query(None)
) -> Response:
    """A request: status, progress, input and output, timeline, logs, state and metrics."""
    function = function or None
    try:
        name = _engine_name(request, app)
        context: dict[str, Any] = {}
        for part in PARTS:
            context.update(await _part(request, app, rid, part))
        given = _input_items(app, rid, await request_records.request_input(request, name, rid))
        logs = await observe.logs(
            name, rid, request, function, follow=False, after=None, limit=1000, keepalive=15.0
        )
    except CoveError as err:
        return _problem(err)
    detail = context["detail"]
    functions = sorted(_called(context["timeline"]) | ({function} if function else set()))
    return render(
        "request.html",
        app=app,
        rid=rid,
        finished=detail["status"] not in ("pending", "running"),
        input=given,
        logs=logs["logs"],
        last_log=logs["last_event_id"],
        function=function,
        functions=functions,
        **context,
    )


def _input_items(app: str, rid: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The arguments as the page lists them: a File as a download link, the rest as JSON."""
    items = []
    for name, value in values.items():
        if isinstance(value, File):
            url = f"/applications/{app}/requests/{rid}/input/{name}"
            file = {"url": url, "content_type": value.content_type, "size": value.size}
            items.append({"name": name, "file": file})
        else:
            items.append({"name": name, "json": _pretty(value)})
    return items


def _called(timeline: dict[str, Any]) -> set[str]:
    return {c["function"] for c in timeline["calls"]}


@router.get("/apps/{app}/requests/{rid}/part/{part}", response_class=HTMLResponse)
async def request_part(app: str, rid: str, part: str, request: Request) -> Response:
    """One section of the request page, for its script to swap in."""
    if part not in PARTS:
        return render("error.html", status_code=404, error=NotFoundError(f"no part {part!r}"))
    try:
        context = await _part(request, app, rid, part)
    except CoveError as err:
        return _problem(err)
    return render(f"part_{part}.html", app=app, rid=rid, **context)


# -- a function's containers -----------------------------------------------------------------
async def _pools_of(request: Request, app: str, function: str) -> list[dict[str, Any]]:
    described = await applications.functions(_engine_name(request, app), request)
    pools = [p for p in described["functions"] if p["function"] == function]
    if not pools:
        raise NotFoundError(f"application {app!r} has no function {function!r}")
    return pools


@router.get("/apps/{app}/functions/{function}", response_class=HTMLResponse)
async def containers_page(app: str, function: str, request: Request) -> Response:
    """A function's pools and containers, live."""
    try:
        pools = await _pools_of(request, app, function)
    except CoveError as err:
        return _problem(err)
    return render("containers.html", app=app, function=function, pools=pools)


@router.get("/apps/{app}/functions/{function}/part", response_class=HTMLResponse)
async def containers_part(app: str, function: str, request: Request) -> Response:
    try:
        pools = await _pools_of(request, app, function)
    except CoveError as err:
        return _problem(err)
    return render("part_containers.html", app=app, function=function, pools=pools)


@router.get("/apps", include_in_schema=False)
async def apps_redirect() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


# -- signing in (servers started with --auth) ------------------------------------------------
_LOGIN_BODY_LIMIT = 4096


def _safe_next(target: str) -> str:
    """Where to go after signing in: a dashboard page of this server, nowhere else."""
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui"


@router.get("/login", response_class=HTMLResponse)
async def login_page(next: str = "/ui") -> Response:
    return render("login.html", next=_safe_next(next), problem=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the key, then keep it in an HttpOnly cookie honoured for GET requests only."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _LOGIN_BODY_LIMIT:
            return render("login.html", 413, next="/ui", problem="That form is too large.")
    form = parse_qs(body.decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/ui"])[0])
    if not request.app.state.engine.settings.auth:
        return RedirectResponse(target, status_code=303)  # no keys on this server
    if not key or await auth.keyring(request).authenticate(key) is None:
        problem = "That key is not valid (unknown, malformed or revoked)."
        return render("login.html", 401, next=target, problem=problem)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response
