"""The dashboard's ASGI app (Starlette): ``create_app(cfg, store_path=None)``.

Handlers are thin: who is asking (``auth``), what the page shows (``queries``), a template or
JSON. Every page and JSON endpoint needs a viewer; ``/login``, ``/static`` and (with
``web.metrics_public``) ``/metrics`` do not. No CORS headers are ever sent; every response
carries a strict Content-Security-Policy (scripts and styles from this server only)."""

import asyncio
import hmac
import json
import logging
import math
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import AccessDenied, NomadeError
from ..store.db import open_store, store_location
from . import auth, queries

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
BACKGROUND_MAX_AGE_S = 600.0
PAGES = (("/", "Overview"), ("/jobs", "Jobs"), ("/network", "Network"), ("/profiles", "Profiles"),
         ("/models", "Models"), ("/alerts", "Alerts"), ("/me", "My page"))


class WebState:
    """What every request needs: settings, the store (one read-only connection per thread),
    the session keys, where the token verifiers live and the proxy rule."""

    def __init__(self, cfg, store_path: Optional[Union[Path, str]] = None,
                 keys: Optional[auth.SessionKeys] = None):
        self.cfg = cfg
        # a SQLite file, or the store.url of a PostgreSQL store
        self.store_path = store_path if store_path is not None else store_location(cfg)
        self.keys = keys or auth.SessionKeys()
        self.token_dir = auth.token_dir(cfg)
        self.proxy_header = (cfg.get("web.proxy_user_header") or "").strip()
        self.proxies = auth.parse_networks(cfg.get("web.trusted_proxies") or [])
        self.admin_group = cfg.get("privacy.admin_group")
        self.live_s = max(0.5, float(cfg.get("web.live_interval_s")))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: Dict[Tuple[Any, ...], Tuple[Any, Any]] = {}
        self._slow: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                      autoescape=True)
        self.env.filters["when"] = _when
        self.env.filters["duration"] = _duration
        self.env.filters["pct"] = _pct
        self.env.filters["num"] = _num
        self.env.filters["bytes"] = _bytes
        self.env.filters["jsonblob"] = _jsonblob

    def cached(self, key: Tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """``build()``, kept while the store does not change (the network is costly to make)."""
        mark = fingerprint(self)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == mark:
            return hit[1]
        value = build()
        with self._lock:
            if len(self._cache) >= 32:
                self._cache.clear()
            self._cache[key] = (mark, value)
        return value

    def in_background(self, key: Tuple[Any, ...], build: Callable[[], Any]) -> Tuple[Any, str]:
        """(value, note) of a slow ``build()`` run in a thread of its own: the last value made
        (rebuilt in the background when older than BACKGROUND_MAX_AGE_S), None and a note while
        the first one is being made or when it failed. A value of None (the module is not
        installed) is kept like any other."""
        with self._lock:
            entry = self._slow.setdefault(key, {"value": None, "at": None, "running": False, "error": ""})
            stale = entry["at"] is None or time.time() - entry["at"] > BACKGROUND_MAX_AGE_S
            if stale and not entry["running"]:
                entry["running"] = True
                threading.Thread(target=self._build_entry, args=(entry, build), daemon=True,
                                 name=f"nomade-web-{key[0]}").start()
            if entry["at"] is None:
                return None, entry["error"] or "being computed; it appears here when done"
            return entry["value"], ("" if entry["value"] is not None else entry["error"]
                                    or "not installed")

    def _build_entry(self, entry: Dict[str, Any], build: Callable[[], Any]) -> None:
        try:
            value, error = build(), ""
        except queries.TooBig as exc:
            value, error = None, str(exc)
        except Exception as exc:  # noqa: BLE001 (another engine's failure: the page falls back and says so)
            log.warning("background build failed: %s", exc)
            value, error = None, f"failed ({type(exc).__name__}: {exc})"
        with self._lock:
            entry.update(value=value, at=time.time(), running=False, error=error)

    def store(self):
        st = getattr(self._local, "store", None)
        if st is None:
            st = open_store(self.store_path, self.cfg.get("store.busy_timeout_ms"), migrate=False,
                            readonly=True)
            self._local.store = st
        return st

    # ------------------------------------------------------------ identity
    def viewer(self, request: Request) -> Optional[auth.Viewer]:
        client = request.client.host if request.client else None
        if self.proxy_header and auth.from_trusted_proxy(client, self.proxies):
            uid = auth.proxy_uid(request.headers, self.proxy_header)
            if uid is None:
                return None
            v = auth.viewer_for_uid(uid, self.admin_group, "proxy")
            return _with_csrf(v, self.keys.csrf(f"proxy:{uid}"))
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            uid = auth.verify_token(self.token_dir, bearer[7:].strip())
            return None if uid is None else auth.viewer_for_uid(uid, self.admin_group, "bearer")
        cookie = request.cookies.get(auth.COOKIE, "")
        uid = self.keys.check_session(cookie, self.token_dir) if cookie else None
        if uid is None:
            return None
        v = auth.viewer_for_uid(uid, self.admin_group, "token")
        return _with_csrf(v, self.keys.csrf(f"session:{cookie}"))

    def render(self, name: str, request: Request, viewer: Optional[auth.Viewer], status: int = 200,
               **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            viewer=viewer, pages=PAGES, path=request.url.path, live_s=self.live_s, **ctx)
        return HTMLResponse(html, status_code=status)


def _with_csrf(v: auth.Viewer, csrf: str) -> auth.Viewer:
    return auth.Viewer(v.uid, v.name, v.admin, v.via, csrf)


# ------------------------------------------------------------------ template filters
def _when(ts: Any) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return "-"


def _duration(s: Any) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 86400}d{s % 86400 // 3600:02d}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100.0 * float(x):.0f}%"


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if math.isfinite(x) else "-"
    return str(x)


def _bytes(x: Any) -> str:
    if x is None:
        return "-"
    x = float(x)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(x) < 1024 or unit == "PiB":
            return f"{x:.1f} {unit}"
        x /= 1024
    return "-"


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _jsonblob(x: Any) -> Markup:
    """JSON for a <script type="application/json"> block: no NaN, and <, >, & escaped so the
    text can never close the element."""
    text = json.dumps(_finite(x), default=str, allow_nan=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704 (escaped above)


# ------------------------------------------------------------------ request plumbing
Handler = Callable[[WebState, Request, auth.Viewer], Any]


def _state(request: Request) -> WebState:
    return request.app.state.web


def _error_status(exc: Exception) -> Tuple[int, str]:
    if isinstance(exc, queries.NotFound):
        return 404, str(exc)
    if isinstance(exc, AccessDenied):
        return 403, str(exc)
    if isinstance(exc, queries.BadRequest):
        return 400, str(exc)
    hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
    return 500, f"{exc}{hint}"


def page(template: str, build: Optional[Handler] = None):
    """A page: login required, data from ``build`` (None: the page fetches its own), rendered."""
    def endpoint(request: Request) -> Response:
        st = _state(request)
        viewer = st.viewer(request)
        if viewer is None:
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
        try:
            data = build(st, request, viewer) if build else {}
        except NomadeError as exc:
            status, msg = _error_status(exc)
            return st.render("error.html", request, viewer, status=status, message=msg)
        return st.render(template, request, viewer, data=data)
    return endpoint


def api(build: Handler):
    """A JSON endpoint: login required; errors as {"error": "..."} with their status."""
    def endpoint(request: Request) -> Response:
        st = _state(request)
        viewer = st.viewer(request)
        if viewer is None:
            return JSONResponse({"error": "login required"}, status_code=401)
        try:
            return _json(build(st, request, viewer))
        except NomadeError as exc:
            status, msg = _error_status(exc)
            return _json({"error": msg}, status)
    return endpoint


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(_finite(data), default=str, allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _same_origin(request: Request) -> bool:
    """A state-changing request must come from this site's pages: its Origin (when sent) names
    this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _csrf_ok(request: Request, viewer: auth.Viewer, form_value: Optional[str] = None) -> bool:
    if viewer.via == "bearer":
        return True           # not sent by a browser on its own: nothing to forge
    given = request.headers.get("x-csrf-token") or form_value or ""
    return bool(viewer.csrf) and hmac.compare_digest(given, viewer.csrf) and _same_origin(request)


# ------------------------------------------------------------------ data builders
def _overview(st, request, viewer):
    return queries.overview(st.cfg, st.store(), viewer)


def _jobs(st, request, viewer):
    return queries.jobs_list(st.cfg, st.store(), viewer, request.query_params)


def _job(st, request, viewer):
    return queries.job_detail(st.cfg, st.store(), viewer, request.path_params["job_id"],
                              request.query_params.get("cluster", ""))


def _network(st, request, viewer):
    return _network_parts(st, request, viewer)[1]


def _network_parts(st, request, viewer):
    """(the behaviour analysis' export or None, the page's payload, limit) for this viewer."""
    try:
        limit = min(queries.NETWORK_MAX, max(1, int(request.query_params.get("limit") or queries.NETWORK_LIMIT)))
    except ValueError:
        raise queries.BadRequest(f"limit: a whole number, 1 to {queries.NETWORK_MAX}") from None

    def build():
        with open_store(st.store_path, st.cfg.get("store.busy_timeout_ms"), migrate=False,
                        readonly=True) as store:
            return queries.behaviour_network(st.cfg, store, viewer, limit)
    key = ("network", viewer.uid, viewer.admin, limit)
    behaviour, note = st.in_background(key, build)
    data = st.cached(key + (id(behaviour), note),
                       lambda: queries.network(st.cfg, st.store(), viewer, limit, behaviour=behaviour, note=note))
    return behaviour, data, limit


def _network_running(st, request, viewer):
    """The running jobs' positions in the same layouts as the page's network (its analysis'
    transform, else its fallback's scaling), recomputed when the store changes."""
    behaviour, data, limit = _network_parts(st, request, viewer)
    return st.cached(("running", viewer.uid, viewer.admin, limit, id(behaviour)),
                     lambda: queries.running_network(st.cfg, st.store(), viewer, behaviour,
                                                     data.get("request_spans")))


def _profiles(st, request, viewer):
    data = _network(st, request, viewer)
    return {"profiles": data.get("profiles") or [], "source": data.get("source")}


def _models(st, request, viewer):
    def build():
        with open_store(st.store_path, st.cfg.get("store.busy_timeout_ms"), migrate=False,
                        readonly=True) as store:
            return queries.production(st.cfg, store, time.time())
    data = queries.models(st.cfg, st.store(), viewer)
    data["production"], data["production_note"] = st.in_background(("production",), build)
    return data


def _alerts(st, request, viewer):
    return {"alerts": queries.all_alerts(st.cfg, st.store(), viewer)}


def _me(st, request, viewer):
    return queries.my_page(st.cfg, st.store(), viewer)


# ------------------------------------------------------------------ actions
async def alert_action(request: Request) -> Response:
    st = _state(request)
    viewer = st.viewer(request)
    if viewer is None:
        return JSONResponse({"error": "login required"}, status_code=401)
    if not _csrf_ok(request, viewer):
        return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
    action = request.path_params["action"]
    if action not in ("ack", "silence"):
        return JSONResponse({"error": "unknown action"}, status_code=404)
    try:
        body = await request.json() if request.headers.get("content-type", "").startswith("application/json") else {}
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    body = body if isinstance(body, dict) else {}
    try:
        duration = float(body.get("duration_s", 3600))
        if not 0 < duration <= 90 * 86400:
            raise ValueError
    except (TypeError, ValueError):
        return JSONResponse({"error": "duration_s: seconds, more than 0, at most 90 days"}, status_code=400)

    def run() -> None:
        from ..store.db import open_store as open_rw
        with open_rw(st.store_path, st.cfg.get("store.busy_timeout_ms"), migrate=False) as store:
            queries.alert_action(st.cfg, store, viewer, request.path_params["alert_id"], action,
                                 by=viewer.name or str(viewer.uid), duration_s=duration,
                                 comment=str(body.get("comment", ""))[:500])
    try:
        await asyncio.get_running_loop().run_in_executor(None, run)
    except NomadeError as exc:
        status, msg = _error_status(exc)
        return JSONResponse({"error": msg}, status_code=status)
    return JSONResponse({"ok": True})


async def login(request: Request) -> Response:
    st = _state(request)
    token, nxt = request.query_params.get("token"), request.query_params.get("next", "/")
    if request.method == "POST":
        if not _same_origin(request):
            return PlainForbidden("cross-site login refused")
        form = await request.form()
        token, nxt = str(form.get("token", "")), str(form.get("next", "/"))
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    if token:
        uid = auth.verify_token(st.token_dir, token)
        verifier = auth.read_verifier(st.token_dir, uid) if uid is not None else None
        if uid is None or verifier is None:
            return st.render("login.html", request, None, status=403, next=nxt,
                             message="That token is not valid (make a new one: nomade dashboard token).")
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(auth.COOKIE, st.keys.session(uid, verifier), max_age=auth.SESSION_S,
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return resp
    return st.render("login.html", request, None, next=nxt, message="")


def PlainForbidden(msg: str) -> Response:  # noqa: N802 (a response constructor)
    return Response(msg, status_code=403, media_type="text/plain")


async def logout(request: Request) -> Response:
    st = _state(request)
    viewer = st.viewer(request)
    form = await request.form()
    if viewer is not None and not _csrf_ok(request, viewer, str(form.get("csrf", ""))):
        return PlainForbidden("missing or wrong CSRF token")
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(auth.COOKIE)
    return resp


async def metrics(request: Request) -> Response:
    st = _state(request)
    if not st.cfg.get("web.metrics_public") and st.viewer(request) is None:
        return PlainForbidden("login required")
    endpoint = queries.optional_module("nomade.web.metrics_endpoint")
    if endpoint is None or not hasattr(endpoint, "render"):
        return Response("# /metrics is not available in this installation\n", status_code=503,
                        media_type="text/plain")
    body, ctype = await asyncio.get_running_loop().run_in_executor(
        None, lambda: endpoint.render(st.cfg, st.store()))
    return Response(body, media_type=ctype)


# ------------------------------------------------------------------ live updates
def fingerprint(st: WebState) -> Tuple[Any, ...]:
    """What changes when anything is written: the store's files (main and WAL: size, mtime)
    and the newest rows (``store.web_queries.newest_change``)."""
    from ..store.web_queries import newest_change
    files = []
    for suffix in ("", "-wal"):
        try:
            s = os.stat(str(st.store_path) + suffix)
            files.append((s.st_size, s.st_mtime_ns))
        except OSError:
            files.append(None)
    return tuple(files) + newest_change(st.store())


async def events(request: Request) -> Response:
    """Server-sent events: ``change`` whenever the store changed since the last check (every
    ``web.live_interval_s``), a comment line as keep-alive. ``?once=1`` sends the first event
    and ends (tests, probes)."""
    st = _state(request)
    if st.viewer(request) is None:
        return JSONResponse({"error": "login required"}, status_code=401)
    once = request.query_params.get("once") == "1"
    loop = asyncio.get_running_loop()

    async def stream():
        last = await loop.run_in_executor(None, fingerprint, st)
        yield f"retry: 2000\nevent: hello\ndata: {json.dumps({'interval_s': st.live_s})}\n\n"
        if once:
            return
        quiet = 0.0
        while not await request.is_disconnected():
            await asyncio.sleep(st.live_s)
            now = await loop.run_in_executor(None, fingerprint, st)
            if now != last:
                last = now
                quiet = 0.0
                yield f"event: change\ndata: {json.dumps({'at': time.time()})}\n\n"
            else:
                quiet += st.live_s
                if quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ------------------------------------------------------------------ the app
class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (pure ASGI: streaming responses stay streams)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"access-control-allow-origin",)]
                present = {k.lower() for k, _ in headers}
                for k, v in SECURITY_HEADERS.items():
                    if k.lower().encode() not in present:
                        headers.append((k.lower().encode(), v.encode()))
                message = dict(message, headers=headers)
            await send(message)
        await self.app(scope, receive, send_with_headers)


def create_app(cfg, *, store_path: Optional[Union[Path, str]] = None,
               keys: Optional[auth.SessionKeys] = None) -> Starlette:
    """The dashboard for ``cfg`` over the store at ``store_path`` (default: cfg.store_path)."""
    state = WebState(cfg, store_path, keys)
    routes = [
        Route("/", page("overview.html", _overview)),
        Route("/jobs", page("jobs.html", _jobs)),
        Route("/job/{job_id}", page("job.html", _job)),
        Route("/network", page("network.html")),
        Route("/profiles", page("profiles.html", _profiles)),
        Route("/models", page("models.html", _models)),
        Route("/alerts", page("alerts.html", _alerts)),
        Route("/me", page("me.html", _me)),
        Route("/api/overview", api(_overview)),
        Route("/api/jobs", api(_jobs)),
        Route("/api/job/{job_id}", api(_job)),
        Route("/api/network", api(_network)),
        Route("/api/network/running", api(_network_running)),
        Route("/api/profiles", api(_profiles)),
        Route("/api/models", api(_models)),
        Route("/api/alerts", api(_alerts)),
        Route("/api/me", api(_me)),
        Route("/api/alerts/{alert_id}/{action}", alert_action, methods=["POST"]),
        Route("/events", events),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/metrics", metrics),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders),
                                               Middleware(GZipMiddleware, minimum_size=2048)])
    app.state.web = state
    return app


def run_server(cfg, host: str, port: int, store_path: Optional[Path] = None) -> None:
    """Serve the dashboard until interrupted (uvicorn)."""
    import uvicorn
    app = create_app(cfg, store_path=store_path)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False,
                timeout_graceful_shutdown=2)


__all__ = ["create_app", "run_server"]
