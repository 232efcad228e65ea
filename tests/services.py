"""Real services for the tests: find a running one, or start a throwaway one.

PostgreSQL, Redis and RabbitMQ are never mocked. For each, the fixtures in ``conftest.py`` take
the server named by an environment variable, else the one this machine runs on its standard
port, else (PostgreSQL and Redis) a throwaway server started here, installing its Debian package
first when we are root and it is missing. A service that cannot be had skips its tests on a
laptop and fails them under CI (``CI=true``), so a broken CI machine is never green.

Fault-injection tests start their own throwaway servers with :func:`start_throwaway_postgres`
and :func:`start_throwaway_redis`, then ``stop()`` (clean shutdown), ``kill()`` (SIGKILL, a
crash) and ``start()`` them again on the same port and data directory. Every server started
here is stopped and its scratch directory removed by ``close()``, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn, Self
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import redis

CI = os.environ.get("CI") == "true"

MACHINE_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MACHINE_REDIS_URL = "redis://127.0.0.1:6379"
MACHINE_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_TEST_DB = 15  # tests flush this database number, never db 0
START_TIMEOUT = 60.0


class ServiceUnavailable(RuntimeError):
    """Raised when a service can neither be found nor started."""


def unavailable(msg: str) -> NoReturn:
    """Fail the test under CI, skip it elsewhere: a missing service is a CI bug, not a laptop's."""
    if CI:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://…`` → ``postgresql://…``, the form libpq and psycopg accept."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def ensure_program(program: str, apt_package: str, search: tuple[str, ...] = ()) -> str:
    """Path of ``program``; as root on Debian, ``apt-get install apt_package`` when it is missing.

    ``search`` lists glob patterns tried before ``$PATH`` (Debian keeps the PostgreSQL server
    binaries in ``/usr/lib/postgresql/<major>/bin``, off the ``$PATH``).
    """
    found = _find_program(program, search)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceUnavailable(f"{program} not found: install the {apt_package!r} package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", apt_package]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # A new machine's package lists may be stale or absent.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)
    found = _find_program(program, search)
    if not found:
        raise ServiceUnavailable(f"{program} not found, and apt-get install {apt_package} failed")
    return found


def _find_program(program: str, search: tuple[str, ...]) -> str | None:
    for pattern in search:
        # Highest version first: /usr/lib/postgresql/16/bin before …/15/bin.
        hits = sorted(Path("/").glob(pattern.lstrip("/")), key=_version_key, reverse=True)
        for hit in hits:
            if os.access(hit, os.X_OK):
                return str(hit)
    return shutil.which(program)


def _flags(options: dict[str, object], prefix: str) -> list[str]:
    """``{"port": 1}`` → ``["--port", "1"]``."""
    return [arg for key, value in options.items() for arg in (prefix + key, str(value))]


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.parts if part.isdigit())


# -- throwaway servers ---------------------------------------------------------------------------

_LIVE: set[Server] = set()


@atexit.register
def _close_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()


class Server:
    """A server process owned by this test run, restartable on the same port and directory.

    ``stop()`` shuts it down cleanly, ``kill()`` SIGKILLs its whole process group (a crash),
    ``start()`` brings it back; all three are no-ops when already in that state. ``close()``
    stops it for good and removes its scratch directory.
    """

    stop_signal = signal.SIGTERM

    def __init__(self, workdir: Path, port: int, *, remove_workdir: bool) -> None:
        self.workdir = workdir
        self.port = port
        self.host = "127.0.0.1"
        self.log_path = workdir / "server.log"
        self._remove_workdir = remove_workdir
        self._proc: subprocess.Popen[bytes] | None = None
        _LIVE.add(self)

    # Subclasses say how to run the server, as whom, and how to tell it is ready.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _user(self) -> pwd.struct_passwd | None:
        return None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until it answers; raises ServiceUnavailable if it cannot."""
        if self.running:
            return
        user = self._user()
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                **ids,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise ServiceUnavailable(f"{self} exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceUnavailable(
                    f"{self} not ready after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown; SIGKILL if it takes longer than ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._proc = None
        _wait_group_gone(proc.pid)

    def kill(self) -> None:
        """SIGKILL the server and all its children at once, as a crash would."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._proc = None
        _wait_group_gone(proc.pid)  # children too, so a restart finds port and memory free

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop for good and remove the scratch directory (if this module created it)."""
        _LIVE.discard(self)
        self.stop()
        if self._remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} in {self.workdir}>"


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process of process group ``pgid`` remains."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _workdir(tmpdir: str | os.PathLike[str], prefix: str, owner: pwd.struct_passwd | None) -> Path:
    """A fresh directory for one server, in ``tmpdir`` when the server can use that."""
    base: Path | None = Path(tmpdir)
    # Under root the server runs as another user, who cannot enter pytest's 0700 tmp dirs; and a
    # unix socket path must stay under 108 bytes. Both cases get a short directory in /tmp.
    if owner is not None or len(str(base)) > 60:
        base = None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


class PostgresServer(Server):
    """A throwaway PostgreSQL cluster: superuser ``postgres``, database ``postgres``."""

    stop_signal = signal.SIGINT  # "fast" shutdown: disconnect clients, then a clean checkpoint

    def __init__(
        self, workdir: Path, port: int, *, bindir: Path, password: str | None, remove_workdir: bool
    ) -> None:
        super().__init__(workdir, port, remove_workdir=remove_workdir)
        self.bindir = bindir
        self.user = "postgres"
        self.password = password
        self.datadir = workdir / "data"
        self.socket_dir = workdir / "sock"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the superuser, with its password when the cluster has one."""
        return self.url_for()

    def url_for(
        self, user: str | None = None, password: str | None = None, dbname: str = "postgres"
    ) -> str:
        """URL for another role, password or database; ``password=""`` gives one without any.

        The superuser's own password is filled in unless another is given.
        """
        user = user or self.user
        password = self.password if password is None and user == self.user else password
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{dbname}"

    def _user(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _command(self) -> list[str]:
        settings: dict[str, object] = {
            "port": self.port,
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            # Throwaway data need not survive an OS crash, only a killed server: commits still
            # write their WAL (kept by the kernel) before returning, they just skip fsync.
            # Never synchronous_commit=off: a SIGKILL would then lose acknowledged commits.
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "200",
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        return [str(self.bindir / "postgres"), "-D", str(self.datadir), *options]

    def _ready(self) -> bool:
        try:
            with psycopg.connect(libpq_url(self.url), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False  # not listening yet, or "the database system is starting up"

    def initdb(self, auth: str) -> None:
        method = {"trust": "trust", "scram": "scram-sha-256"}[auth]
        pwfile = self.workdir / "pwfile"
        options = {
            "pgdata": self.datadir,
            "username": self.user,
            "encoding": "UTF8",
            "auth": method,
        }
        args = [str(self.bindir / "initdb"), *_flags(options, "--"), "--no-locale", "--no-sync"]
        if self.password is not None:
            pwfile.touch(mode=0o600)
            pwfile.write_text(self.password + "\n")
            args.append(f"--pwfile={pwfile}")
        user = self._user()
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        self.socket_dir.mkdir()
        if user:
            for path in (self.socket_dir, pwfile):
                with contextlib.suppress(FileNotFoundError):
                    os.chown(path, user.pw_uid, user.pw_gid)
        try:
            done = subprocess.run(
                args, cwd=self.workdir, capture_output=True, text=True, check=False, **ids
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise ServiceUnavailable(f"initdb failed ({done.returncode}):\n{done.stderr}")


def start_throwaway_postgres(
    tmpdir: str | os.PathLike[str],
    auth: str = "trust",
    password: str | None = None,
    port: int | None = None,
) -> PostgresServer:
    """initdb a new cluster and start it on 127.0.0.1 (a free port unless ``port`` is given).

    ``auth="trust"`` lets anyone in; ``auth="scram"`` requires ``password`` (a random one if
    None) over TCP and on the unix socket. The server runs as the ``postgres`` user when we are
    root. Raises ServiceUnavailable if PostgreSQL is not installed and cannot be.
    """
    if auth not in ("trust", "scram"):
        raise ValueError(f"auth must be 'trust' or 'scram', got {auth!r}")
    if auth == "scram" and password is None:
        password = secrets.token_urlsafe(16)
    initdb = ensure_program("initdb", "postgresql", ("/usr/lib/postgresql/*/bin/initdb",))
    bindir = Path(initdb).resolve().parent
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    workdir = _workdir(tmpdir, "hypero-pg-", owner)
    server = PostgresServer(
        workdir,
        port or free_port(),
        bindir=bindir,
        password=password,
        remove_workdir=workdir.parent != Path(tmpdir),
    )
    try:
        server.initdb(auth)
        server.start()
    except BaseException:
        server.close()
        raise
    return server


class RedisServer(Server):
    """A throwaway redis-server that keeps nothing on disk: a restart comes back empty."""

    def __init__(self, workdir: Path, port: int, *, binary: str, remove_workdir: bool) -> None:
        super().__init__(workdir, port, remove_workdir=remove_workdir)
        self.binary = binary

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` with no database number: append ``/N``."""
        return f"redis://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        options = {
            "port": self.port,
            "bind": self.host,
            "dir": self.workdir,
            "daemonize": "no",
            "save": "",
            "appendonly": "no",
        }
        return [self.binary, *_flags(options, "--")]

    def _ready(self) -> bool:
        return redis_answers(self.url)


def start_throwaway_redis(tmpdir: str | os.PathLike[str], port: int | None = None) -> RedisServer:
    """Start a redis-server on 127.0.0.1 (a free port unless ``port`` is given), no persistence."""
    binary = ensure_program("redis-server", "redis-server")
    workdir = _workdir(tmpdir, "hypero-redis-", None)
    server = RedisServer(
        workdir, port or free_port(), binary=binary, remove_workdir=workdir.parent != Path(tmpdir)
    )
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


# -- what the session fixtures use ----------------------------------------------------------------


def pg_superuser(url: str) -> bool:
    """True when ``url`` connects as a superuser."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            return bool(row.fetchone()[0])
    except psycopg.Error:
        return False


def redact(url: str) -> str:
    """``scheme://user:secret@host/…`` → ``scheme://user:***@host/…``, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def find_postgres(
    tmpdir: str | os.PathLike[str],
    machine_url: str = MACHINE_PG_URL,
) -> tuple[str, PostgresServer | None]:
    """``$HYPERO_TEST_PG``, else the machine's server, else a throwaway cluster (returned too)."""
    env = os.environ.get("HYPERO_TEST_PG")
    if env:
        url = "postgresql+psycopg://" + env.partition("://")[2]
        if not pg_superuser(url):
            raise ServiceUnavailable(f"HYPERO_TEST_PG={redact(env)}: no superuser connection")
        return url, None
    if pg_superuser(machine_url):
        return machine_url, None
    server = start_throwaway_postgres(tmpdir)
    return server.url, server


def find_redis(
    tmpdir: str | os.PathLike[str],
    machine_url: str = MACHINE_REDIS_URL,
) -> tuple[str, RedisServer | None]:
    """``$HYPERO_TEST_REDIS`` as is, else ``/15`` on the machine's or a throwaway server."""
    env = os.environ.get("HYPERO_TEST_REDIS")
    if env:
        if not redis_answers(env):
            raise ServiceUnavailable(f"HYPERO_TEST_REDIS={redact(env)}: no answer to PING")
        return env, None
    if redis_answers(machine_url):
        return f"{machine_url}/{REDIS_TEST_DB}", None
    server = start_throwaway_redis(tmpdir)
    return f"{server.url}/{REDIS_TEST_DB}", server


def find_rabbitmq() -> str:
    """``$HYPERO_TEST_AMQP``, else the machine's RabbitMQ; never started here (.ci/run does)."""
    url = os.environ.get("HYPERO_TEST_AMQP") or MACHINE_AMQP_URL
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if not port_open(host, port):
        raise ServiceUnavailable(f"no RabbitMQ accepting connections at {host}:{port}")
    return url
