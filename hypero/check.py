"""``hypero check``: find what makes a setup unsafe, and say how to fix it.

Every check inspects URLs, files and configuration; none connects to a server (a host name is
resolved to tell loopback from network addresses, nothing more). Messages name hosts, ports and
paths, never a password.
"""

from __future__ import annotations

import ipaddress
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hypero import config
from hypero.db import _libpq_conninfo, backend_of
from hypero.errors import ConfigError

#: content types Celery would deserialise with pickle
PICKLE = ("pickle", "application/x-python-serialize")
_CELERY_CONTENT = ("accept_content", "result_accept_content")
_CELERY_SERIALIZERS = ("task_serializer", "result_serializer", "event_serializer")


@dataclass(frozen=True)
class Problem:
    """One unsafe thing: what it is, and how to fix it."""

    what: str
    fix: str


def is_loopback(host: str) -> bool:
    """True for a loopback address, a name that resolves only to loopback addresses, or a unix
    socket directory; False for anything else (including names that do not resolve)."""
    host = host.strip().strip("[]")
    if not host or host.startswith("/") or host.startswith("@"):
        return True  # libpq's default and '/dir' and '@abstract' are unix sockets
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addrs = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


# -- the broker ---------------------------------------------------------------------------------


def check_broker(url: str | None) -> list[Problem]:
    """Redis reachable over the network without a password."""
    if not url or not url.startswith(("redis://", "rediss://")):
        return []  # the embedded broker is a unix socket; RabbitMQ refuses guest remotely
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 6379
    if parts.password or is_loopback(host):
        return []
    return [Problem(
        f"broker: Redis at {host}:{port} is on a network address and the URL gives no "
        "password, so anyone who can reach it can read, add or delete trials",
        "set a password on the server (requirepass, or an ACL user) and put it in the URL: "
        f"redis://:PASSWORD@{host}:{port}/0 (HYPERO_BROKER); better still, use rediss:// "
        "(TLS), or bind Redis to 127.0.0.1 and reach it through an SSH tunnel",
    )]


# -- the database -------------------------------------------------------------------------------


def _conninfo(url: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(_libpq_conninfo(url)).items()
                if v is not None}
    except Exception as e:  # psycopg.ProgrammingError: the text may quote the password
        raise ConfigError(
            f"--db: cannot parse the PostgreSQL URL: {config.redact(str(e))}") from None


def check_database(url: str, env: Mapping[str, str], home: Path) -> list[Problem]:
    """PostgreSQL on a network host without ``sslmode=verify-full``; a ``.pgpass`` that others
    can read. ``env`` is libpq's environment (``PGHOST``, ``PGSSLMODE``, ``PGPASSFILE``)."""
    if backend_of(url) != "postgresql":
        return []
    info = _conninfo(url)
    problems = []
    hosts = (info.get("host") or env.get("PGHOST") or "").split(",")
    hostaddrs = (info.get("hostaddr") or env.get("PGHOSTADDR") or "").split(",")
    remote = [h for h in hosts + hostaddrs if h and not is_loopback(h)]
    sslmode = info.get("sslmode") or env.get("PGSSLMODE") or "prefer"
    if remote and sslmode != "verify-full":
        problems.append(Problem(
            f"database: PostgreSQL at {', '.join(remote)} is reached with sslmode={sslmode}, "
            "which does not verify the server: passwords and results can be read or changed "
            "on the way",
            "add sslmode=verify-full and the server's CA to the URL "
            "(postgresql://user@host/db?sslmode=verify-full&sslrootcert=/path/to/ca.crt, "
            "or PGSSLMODE=verify-full and ~/.postgresql/root.crt); enable ssl on the server",
        ))
    passfile = Path(info.get("passfile") or env.get("PGPASSFILE") or home / ".pgpass")
    problems += check_pgpass(passfile.expanduser())
    return problems


def check_pgpass(path: Path) -> list[Problem]:
    """A password file that its group or other users can read or write."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not stat.S_ISREG(mode) or not mode & 0o077:
        return []
    return [Problem(
        f"password file {path} has mode {stat.filemode(mode)}: other users of this machine "
        "can read the passwords in it (and libpq ignores it)",
        f"chmod 600 {path}",
    )]


# -- Celery -------------------------------------------------------------------------------------


def check_celery(celery: Any, label: str = "hypero's Celery app") -> list[Problem]:
    """Pickle among the content types a Celery app accepts or sends."""
    conf = celery.conf
    found = []
    for key in _CELERY_CONTENT:
        if any(str(c).lower() in PICKLE for c in conf.get(key) or ()):
            found.append(key)
    for key in _CELERY_SERIALIZERS:
        if str(conf.get(key) or "").lower() in PICKLE:
            found.append(key)
    if not found:
        return []
    return [Problem(
        f"{label} accepts pickle ({', '.join(found)}): anyone who can write to the broker can "
        "run any code on every worker",
        "accept JSON only: accept_content=['json'], result_accept_content=['json'] and "
        "task_serializer/result_serializer/event_serializer='json'",
    )]


# -- all of it ----------------------------------------------------------------------------------


def run_checks(
    settings: config.Settings, env: Mapping[str, str], home: Path,
    apps: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Every problem of this setup: its database and broker URLs, the password file libpq
    would read, hypero's Celery configuration and ``apps`` (a user's own Celery apps, by the
    name to show)."""
    from celery import Celery

    from hypero.tasks import configure

    problems = check_database(settings.db, env, home) + check_broker(settings.broker)
    if settings.broker:
        problems += check_celery(configure(Celery("hypero-check"), settings))
    for name, app in (apps or {}).items():
        problems += check_celery(app, f"Celery app {name}")
    return problems


def user_app(ref: str) -> Any:
    """The Celery app at ``MODULE:NAME`` (``--celery-app``)."""
    import importlib

    module, _, name = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), name or "app")
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"--celery-app: cannot load {ref!r}: {e}") from None

