"""Settings: the one module that reads the environment.

Everything else receives a :class:`Settings` or explicit arguments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from hypero.errors import ConfigError

DEFAULT_DB = "sqlite:///hypero.db"
DEFAULT_SCHEMA = "hyper"
DEFAULT_QUEUE = "hypero"
DEFAULT_CHECKPOINTS = "hypero-checkpoints"
#: Redis re-delivers an unacknowledged message after this long; hypero's lease recovers lost
#: trials much sooner, so this only has to exceed the longest trial (30 days).
DEFAULT_VISIBILITY_TIMEOUT = 30 * 24 * 3600.0

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# the password runs to the LAST "@" before the host (a raw "@" in a password is common)
_SECRET_RE = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^/\s]*)(?P<at>@)")
# password=, sslpassword=, PGPASSWORD=… in libpq key=value strings and environments
_KV_SECRET_RE = re.compile(r"(?P<head>\b\w*password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)


@dataclass(frozen=True)
class Settings:
    """Resolved settings; :func:`from_env` builds one from arguments and the environment."""

    db: str = DEFAULT_DB
    schema: str = DEFAULT_SCHEMA
    broker: str | None = None
    checkpoints: Path = field(default_factory=lambda: Path(DEFAULT_CHECKPOINTS))
    spool: Path | None = None
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT

    def __repr__(self) -> str:  # never a password, wherever a Settings is printed or logged
        return (f"Settings(db={redact(self.db)!r}, schema={self.schema!r}, "
                f"broker={None if self.broker is None else redact(self.broker)!r}, "
                f"checkpoints={str(self.checkpoints)!r})")


def from_env(
    db: str | None = None, broker: str | None = None, schema: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings: explicit argument > ``HYPERO_*`` environment variable > default."""
    e = os.environ if env is None else env
    sch = schema or e.get("HYPERO_SCHEMA") or DEFAULT_SCHEMA
    check_schema(sch)
    spool = e.get("HYPERO_SPOOL")
    return Settings(
        db=absolute_sqlite(db or e.get("HYPERO_DB") or DEFAULT_DB),
        schema=sch,
        broker=broker or e.get("HYPERO_BROKER") or None,
        checkpoints=Path(e.get("HYPERO_CHECKPOINTS") or DEFAULT_CHECKPOINTS),
        spool=Path(spool) if spool else None,
        visibility_timeout=_seconds("HYPERO_VISIBILITY_TIMEOUT",
                                    e.get("HYPERO_VISIBILITY_TIMEOUT"),
                                    DEFAULT_VISIBILITY_TIMEOUT),
    )


def _seconds(name: str, text: str | None, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``, else ``default``."""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}: not a number of seconds: {text!r}") from None
    if not value > 0:
        raise ConfigError(f"{name}: must be > 0 seconds (got {text})")
    return value


def trial_env(env: dict[str, str] | None = None) -> tuple[int, int | None] | None:
    """``(hex id, attempt)`` when this process runs a trial (``HYPERO_HEX_ID``/``_ATTEMPT``)."""
    e = os.environ if env is None else env
    if not e.get("HYPERO_HEX_ID"):
        return None
    try:
        attempt = e.get("HYPERO_ATTEMPT")
        return int(e["HYPERO_HEX_ID"]), int(attempt) if attempt else None
    except ValueError as err:
        raise ConfigError(f"HYPERO_HEX_ID/HYPERO_ATTEMPT must be integers: {err}") from None


def libpq_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The ``PG*`` variables libpq reads (``PGHOST``, ``PGSSLMODE``, ``PGPASSFILE``, …)."""
    e = os.environ if env is None else env
    return {k: v for k, v in e.items() if k.startswith("PG")}


def absolute_sqlite(url: str) -> str:
    """``sqlite:///rel.db`` made absolute, so that workers and trial programs started in other
    directories open the same file."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(Path(url[len(prefix):]).absolute())
    return url


def check_schema(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise :class:`ConfigError`."""
    if not _SCHEMA_RE.match(name):
        raise ConfigError(
            f"schema: {name!r} is not a plain identifier (letters, digits, underscore)"
        )
    return name


def dsn_from_keywords(
    host: str | None = None, port: int | str | None = None, user: str | None = None,
    password: str | None = None, dbname: str | None = None,
) -> str:
    """Build a ``postgresql://`` DSN from seed-style keywords; omitted parts fall to libpq."""
    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    elif password:
        auth = ":" + quote(password, safe="") + "@"
    netloc = quote(host, safe="") if host else ""
    if port:
        netloc += f":{int(port)}"
    path = "/" + quote(dbname, safe="") if dbname else ""
    return f"postgresql://{auth}{netloc}{path}"


def redact(text: str) -> str:
    """Replace every password in URLs (``scheme://user:pw@``) and ``password=`` pairs by ``***``."""
    text = _SECRET_RE.sub(lambda m: f"{m['head']}***{m['at']}" if m["pw"] else m[0], text)
    return _KV_SECRET_RE.sub(lambda m: f"{m['head']}***", text)


def checkpoint_root(settings: Settings | None = None) -> Path:
    """The checkpoint root every worker host mounts (``HYPERO_CHECKPOINTS``)."""
    return (settings or from_env()).checkpoints
