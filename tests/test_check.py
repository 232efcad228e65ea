"""``hypero check``: each unsafe setup warned about (exit 1) with its fix, a safe one passes.

The addresses are written into URLs and never contacted: ``check`` inspects URLs, files and
configuration only. Every run has its own ``HOME`` and no ``PG*`` variable but those it sets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from celery import Celery
from click.testing import CliRunner, Result

from hypero import config
from hypero.check import check_celery, is_loopback
from hypero.cli import main
from hypero.tasks import configure

CANARY = "Canary-7Q2x-not-a-real-password"
REMOTE = "10.255.77.1"  # never contacted: check only reads the URL
#: a user's Celery app that accepts pickle, for ``--celery-app tests.test_check:PICKLE_APP``
PICKLE_APP = Celery("pickle-app")
PICKLE_APP.conf.update(accept_content=["json", "pickle"], task_serializer="pickle")


def check(home: Path, *args: str, **env: str) -> Result:
    """``hypero check ARGS`` with ``HOME=home`` and exactly the ``PG*`` variables given."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("PG", "HYPERO_"))}
    clean.update(HOME=str(home), **env)
    result = CliRunner().invoke(main, ["check", *args], env=clean)
    assert CANARY not in result.output, result.output  # a password is never printed
    return result


def warnings(result: Result) -> list[str]:
    return [ln for ln in result.output.splitlines() if ln.startswith("warning:")]


def test_a_local_setup_has_no_problems(tmp_path: Path) -> None:
    r = check(tmp_path, "--db", f"sqlite:///{tmp_path / 'h.db'}")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == "no problems found"
    assert "broker:   embedded (local)" in r.output


@pytest.mark.parametrize("broker", [
    f"redis://:{CANARY}@{REMOTE}:6379/0",  # a password
    "redis://127.0.0.1:6379/0",  # loopback
    "redis://localhost:6390/15",
    "redis://[::1]:6379",
    "redis+socket:///tmp/r.sock",  # the embedded broker's unix socket
])
def test_redis_with_auth_or_on_loopback_is_fine(tmp_path: Path, broker: str) -> None:
    r = check(tmp_path, "--db", f"sqlite:///{tmp_path / 'h.db'}", "--broker", broker)
    assert r.exit_code == 0, r.output
    assert "no problems found" in r.output


def test_redis_without_auth_on_a_network_address(tmp_path: Path) -> None:
    r = check(tmp_path, "--db", f"sqlite:///{tmp_path / 'h.db'}",
              "--broker", f"redis://{REMOTE}:6380/0")
    assert r.exit_code == 1, r.output
    (w,) = warnings(r)
    assert f"Redis at {REMOTE}:6380" in w and "no password" in w
    assert "fix: set a password on the server (requirepass" in r.output
    assert r.output.splitlines()[-1] == "1 problem found"


@pytest.mark.parametrize("db, env, mode", [
    (f"postgresql://u:{CANARY}@{REMOTE}:5432/db", {}, "prefer"),  # libpq's default
    (f"postgresql+psycopg://u:{CANARY}@{REMOTE}/db?sslmode=require", {}, "require"),
    (f"host={REMOTE} dbname=db user=u password={CANARY} sslmode=verify-ca", {}, "verify-ca"),
    ("postgresql:///db", {"PGHOST": REMOTE}, "prefer"),
    (f"postgresql://u@{REMOTE}/db", {"PGSSLMODE": "require"}, "require"),
    (f"postgresql://u@localhost,{REMOTE}/db", {}, "prefer"),  # one of two hosts is remote
])
def test_postgresql_on_a_network_host_without_verify_full(
    tmp_path: Path, db: str, env: dict[str, str], mode: str
) -> None:
    r = check(tmp_path, "--db", db, **env)
    assert r.exit_code == 1, r.output
    (w,) = warnings(r)
    assert f"PostgreSQL at {REMOTE} is reached with sslmode={mode}" in w
    assert "fix: add sslmode=verify-full and the server's CA" in r.output


@pytest.mark.parametrize("db, env", [
    (f"postgresql://u:{CANARY}@{REMOTE}/db?sslmode=verify-full&sslrootcert=/ca.crt", {}),
    (f"postgresql://u@{REMOTE}/db", {"PGSSLMODE": "verify-full"}),
    (f"postgresql://u:{CANARY}@127.0.0.1:5432/db", {}),
    (f"postgresql://u:{CANARY}@localhost/db", {}),
    ("postgresql://u@/db?host=/var/run/postgresql", {}),  # a unix socket
    ("dbname=db user=u", {}),  # libpq's default: the unix socket
])
def test_postgresql_verified_or_local_is_fine(
    tmp_path: Path, db: str, env: dict[str, str]
) -> None:
    r = check(tmp_path, "--db", db, **env)
    assert r.exit_code == 0, r.output
    assert "no problems found" in r.output


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_pgpass_readable_by_others(tmp_path: Path, mode: int) -> None:
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"localhost:5432:*:u:{CANARY}\n")
    pgpass.chmod(mode)
    r = check(tmp_path, "--db", "postgresql://u@localhost/db")
    assert r.exit_code == 1, r.output
    (w,) = warnings(r)
    assert f"password file {pgpass} has mode" in w
    assert f"fix: chmod 600 {pgpass}" in r.output
    pgpass.chmod(0o600)
    assert check(tmp_path, "--db", "postgresql://u@localhost/db").exit_code == 0


def test_pgpassfile_and_passfile_are_the_files_checked(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "pass"
    other.parent.mkdir()
    other.write_text(f"*:*:*:u:{CANARY}\n")
    other.chmod(0o644)
    (tmp_path / ".pgpass").write_text("")  # 0644 too, but libpq reads PGPASSFILE instead
    (tmp_path / ".pgpass").chmod(0o644)
    for args, env in (([], {"PGPASSFILE": str(other)}), ([f"?passfile={other}"], {})):
        r = check(tmp_path, "--db", "postgresql://u@localhost/db" + "".join(args), **env)
        assert r.exit_code == 1, r.output
        (w,) = warnings(r)
        assert f"password file {other} has mode -rw-r--r--" in w


def test_sqlite_ignores_pgpass(tmp_path: Path) -> None:
    (tmp_path / ".pgpass").write_text("")
    (tmp_path / ".pgpass").chmod(0o644)
    assert check(tmp_path, "--db", f"sqlite:///{tmp_path / 'h.db'}").exit_code == 0


def test_pickle_in_a_users_celery_app(tmp_path: Path) -> None:
    r = check(tmp_path, "--db", f"sqlite:///{tmp_path / 'h.db'}", "--broker",
              "redis://127.0.0.1:6379/0", "--celery-app", "tests.test_check:PICKLE_APP")
    assert r.exit_code == 1, r.output
    (w,) = warnings(r)
    assert ("Celery app tests.test_check:PICKLE_APP accepts pickle "
            "(accept_content, task_serializer)") in w
    assert "fix: accept JSON only: accept_content=['json']" in r.output
    bad = check(tmp_path, "--celery-app", "tests.test_check:NOPE")
    assert bad.exit_code == 2 and "--celery-app: cannot load" in bad.output


def test_hypero_app_is_json_only() -> None:
    settings = config.Settings(broker="redis://127.0.0.1:6379/0")
    assert check_celery(configure(Celery("probe"), settings)) == []
    app = Celery("probe")
    app.conf.update(accept_content=["application/x-python-serialize"])
    (p,) = check_celery(app, "probe")
    assert "accept_content" in p.what


def test_every_problem_at_once_and_no_password_printed(tmp_path: Path) -> None:
    (tmp_path / ".pgpass").write_text(f"*:*:*:u:{CANARY}\n")
    (tmp_path / ".pgpass").chmod(0o644)
    r = check(tmp_path, "--db", f"postgresql://u:{CANARY}@{REMOTE}/db", "--broker",
              f"redis://{REMOTE}:6379/0", "--celery-app", "tests.test_check:PICKLE_APP")
    assert r.exit_code == 1, r.output
    assert len(warnings(r)) == 4, r.output
    assert r.output.count("\n  fix: ") == 4
    assert r.output.splitlines()[-1] == "4 problems found"
    assert f"database: postgresql://u:***@{REMOTE}/db" in r.output


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.8.0.1") and is_loopback("::1")
    assert is_loopback("localhost") and is_loopback("/var/run/postgresql") and is_loopback("")
    assert not is_loopback(REMOTE) and not is_loopback("fd00::1")
