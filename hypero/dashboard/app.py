"""The dashboard's web application (Starlette) and its server (uvicorn).

Every route is a ``GET`` (``HEAD`` too): nothing here writes to the database. Responses never
carry the database URL; names travel as JSON data and the page renders them as text. JSON has no
NaN or infinity, so non-finite floats are sent as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, exactly as hypero stores them in PostgreSQL (:mod:`hypero.codec`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as e:  # pragma: no cover - exercised by users without the extra
    from hypero.errors import ConfigError

    raise ConfigError(
        f"hypero dashboard needs the dashboard extra: pip install 'hypero[dashboard]' ({e})"
    ) from e

from hypero import codec
from hypero.connection import Connection
from hypero.dashboard import api
from hypero.dashboard.openapi import SCHEMA
from hypero.errors import ConfigError, NotFound, StorageError
from hypero.monitor import SweepStatus

STATIC = Path(__file__).with_name("static")
BROKER_EVERY = 2.0  # seconds between two looks at the broker (queue depth, live workers)
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return codec.dumps(content).encode()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is reachable from this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Guard:
    """Adds security headers; on a loopback bind, refuses requests whose ``Host`` is not a
    loopback name (a DNS-rebinding page must not read the API through the user's browser)."""

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self.app, self.loopback_only = app, loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only and not is_loopback(_host(scope)):
            await Response("hypero dashboard: forbidden Host header", 403,
                           media_type="text/plain")(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = str(value.decode("latin-1"))
            if host.startswith("["):
                return host[1:host.find("]")]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


class BrokerView:
    """Queue depth and live workers, refreshed by a background thread every ``BROKER_EVERY``
    seconds so that a slow broker never holds up a page."""

    def __init__(self, celery: Any) -> None:
        self.celery = celery
        self.depths: dict[str, int | None] = {}
        self.workers: dict[str, list[str]] | None = None  # name: the queues it consumes
        self._queues: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hypero-broker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from hypero.broker import depth, live_workers

        while not self._stop.is_set():
            self.workers = live_workers(self.celery)
            self.depths = {q: depth(self.celery, q) for q in list(self._queues)}
            self._wake.wait(BROKER_EVERY)
            self._wake.clear()

    def fill(self, items: list[SweepStatus]) -> None:
        for s in items:
            if s.queue not in self._queues:
                self._queues.add(s.queue)
                self._wake.set()
            workers = self.workers
            s.depth = self.depths.get(s.queue)
            s.workers = None if workers is None else [
                w for w, queues in workers.items() if s.queue in queues]

    def close(self) -> None:
        self._stop.set()
        self._wake.set()


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}: must be an integer (got {raw!r})") from None


def _int_or(request: Request, name: str, default: int) -> int:
    got = _int(request, name)
    return default if got is None else got


def _list(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    return None if not raw else [v for v in raw.split(",") if v]


def create_app(conn: Connection, celery: Any = None, *, loopback_only: bool = True) -> ASGIApp:
    """The dashboard over ``conn`` (read-only); with a configured ``celery`` app, sweeps show
    queue depth and live workers."""
    store = conn.store
    broker = None if celery is None else BrokerView(celery)
    fill = None if broker is None else broker.fill
    keys = api.KeyCache()

    def route(path: str, fn: Callable[[Request], Any]) -> Route:
        def endpoint(request: Request) -> Response:
            try:
                return JSON(fn(request))
            except NotFound as e:
                return JSON({"error": str(e)}, 404)
            except ValueError as e:
                return JSON({"error": str(e)}, 400)
            except StorageError as e:
                return JSON({"error": str(e)}, 503)

        return Route(path, endpoint, methods=["GET"])

    def pid(r: Request) -> int:
        return int(r.path_params["id"])

    def trials(r: Request) -> Any:
        return api.trial_page(
            store, pid(r), version=_int(r, "version"), state=_list(r, "state"),
            sweep=_int(r, "sweep"), sort=r.query_params.get("sort") or None,
            desc=_order(r), offset=_int_or(r, "offset", 0), limit=_int_or(r, "limit", 50),
        )

    def points(r: Request) -> Any:
        x, y = r.query_params.get("x"), r.query_params.get("y")
        if not x or not y:
            raise ValueError("x and y: both are required (param:KEY or result:KEY)")
        return api.points(store, pid(r), x, y, version=_int(r, "version"),
                          limit=_int_or(r, "limit", api.MAX_POINTS))

    def curves(r: Request) -> Any:
        ids = _list(r, "ids") or []
        try:
            hex_ids = [int(i) for i in ids]
        except ValueError:
            raise ValueError(f"ids: must be integers separated by commas (got {ids})") from None
        return api.curves(store, hex_ids, _list(r, "names"))

    def index(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        return JSON({"error": "no such route" if code == 404 else "method not allowed"
                     if code == 405 else "error"}, code)

    routes = [
        Route("/", index, methods=["GET"]),
        route("/api/openapi.json", lambda r: SCHEMA),
        route("/api/batteries", lambda r: api.batteries(store)),
        route("/api/batteries/{id:int}", lambda r: api.battery_info(store, pid(r), keys)),
        route("/api/batteries/{id:int}/status", lambda r: api.status(store, pid(r), fill)),
        route("/api/batteries/{id:int}/trials", trials),
        route("/api/batteries/{id:int}/points", points),
        route("/api/sweeps/{id:int}", lambda r: api.sweep_info(store, pid(r), fill=fill)),
        route("/api/trials/{id:int}", lambda r: api.trial(store, pid(r))),
        route("/api/curves", curves),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if broker is not None:
            broker.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found},
                    lifespan=lifespan)
    return _Guard(app, loopback_only)


def _order(r: Request) -> bool | None:
    order = r.query_params.get("order")
    if order in (None, ""):
        return None
    if order not in ("asc", "desc"):
        raise ValueError(f"order: must be asc or desc (got {order!r})")
    return order == "desc"


# -- serving --------------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); :class:`ConfigError` if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"--host/--port: cannot listen on {host}:{port}: {e.strerror}; "
                          f"pick another --port") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class Server:
    """The dashboard served from a background thread: ``with Server(conn) as s: s.url``."""

    def __init__(self, conn: Connection, host: str = "127.0.0.1", port: int = 0,
                 celery: Any = None) -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock).rstrip("/")
        app = create_app(conn, celery, loopback_only=is_loopback(host))
        self._server = uvicorn.Server(_config(app))
        self._thread = threading.Thread(target=self._server.run, args=([self.sock],),
                                        name="hypero-dashboard", daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the dashboard server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.sock.close()


def _config(app: ASGIApp) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                          timeout_graceful_shutdown=2)


def serve(conn: Connection, host: str, port: int, celery: Any,
          say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """Serve the dashboard in the foreground until interrupted (Ctrl-C)."""
    sock = bind(host, port)
    if not is_loopback(host):
        warn(f"warning: the dashboard listens on {host}, reachable from other machines, and "
             f"has no login: anyone who reaches port {sock.getsockname()[1]} reads every "
             f"battery, parameter and result. Prefer the default --host 127.0.0.1 and an SSH "
             f"tunnel (ssh -L {sock.getsockname()[1]}:127.0.0.1:{sock.getsockname()[1]} …).")
    say(f"hypero dashboard (read-only) on {url_of(sock)} — Ctrl-C to stop")
    app = create_app(conn, celery, loopback_only=is_loopback(host))
    # uvicorn stops gracefully on Ctrl-C, then raises it again for the caller: a normal end here
    with contextlib.closing(sock), contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(_config(app)).run([sock])

