"""Security: a canary password in both URLs shows up nowhere; messages are JSON hex ids only.

The canary sweep runs on its own PostgreSQL cluster (scram, a role whose password is the canary)
and its own Redis (``requirepass`` the canary), through the CLI and real workers, and then looks
for the canary, raw and %-encoded, in every line the CLI printed, every worker log, every spool
file, every process's command line, and the text of every row of every table hypero wrote.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import redis
from celery import Celery
from psycopg import sql

from hypero import config
from hypero.tasks import TASK, app, configure, publish, run_trial
from tests import services
from tests.workers import REPO, Procs, clean_env, hypero_cli, unique, write_spec

pytestmark = pytest.mark.timeout(180)
#: URL metacharacters included, so that the %-encoded form is not the raw one
CANARY = "Canary7/x?y@Zq#" + os.urandom(4).hex()
ROLE = "canary_role"


def leaky(hex: Any) -> dict[str, Any]:
    """A trial (run by the workers) whose code puts both URLs in its error, as user code may."""
    k = hex.randint("k", 0, 2)
    hex.log(step=0, k=k)
    hex.set_meta({"db_scheme": os.environ["HYPERO_DB"].split(":", 1)[0]})
    if k == 1:
        raise RuntimeError(f"cannot reach {os.environ['HYPERO_DB']} "
                           f"(broker {os.environ['HYPERO_BROKER']})")
    return {"k": k, "score": k / 2}


@dataclass
class Canary:
    db: str
    broker: str
    pg: services.PostgresServer
    forms: tuple[str, ...] = (CANARY, quote(CANARY, safe=""), quote(CANARY))

    def elsewhere(self, url: str, port: str | None = None) -> str:
        """``url`` on another port: a free one (nothing listens), or ``port`` as written."""
        head, _, tail = url.rpartition(":")
        return f"{head}:{port or services.free_port()}/{tail.partition('/')[2]}"

    def assert_absent(self, text: str, where: str) -> None:
        for form in self.forms:
            assert form not in text, f"the canary password leaked into {where}:\n{text}"


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Canary]:
    try:
        pg = services.start_throwaway_postgres(tmp_path, auth="scram")
        rs = services.start_throwaway_redis(tmp_path)
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway PostgreSQL/Redis: {e}")
    with psycopg.connect(services.libpq_url(pg.url), autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal(CANARY)))
        c.execute(sql.SQL("CREATE DATABASE canary OWNER {}").format(sql.Identifier(ROLE)))
    with redis.Redis.from_url(rs.url) as client:
        client.config_set("requirepass", CANARY)
    q = quote(CANARY, safe="")
    yield Canary(f"postgresql://{ROLE}:{q}@127.0.0.1:{pg.port}/canary",
                 f"redis://:{q}@127.0.0.1:{rs.port}/0", pg)
    rs.close()
    pg.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stored_text(canary: Canary) -> dict[str, str]:
    """``{table: the text of all its rows}`` for every table of hypero's schema."""
    admin = services.libpq_url(canary.pg.url_for(dbname="canary"))
    out = {}
    with psycopg.connect(admin) as c:
        tables = [t for (t,) in c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'hyper'")]
        for t in tables:
            q = sql.SQL("SELECT coalesce(string_agg(x::text, E'\\n'), '') FROM {} x").format(
                sql.Identifier("hyper", t))
            out[t] = c.execute(q).fetchone()[0]
    return out


def test_a_canary_password_in_both_urls_is_never_shown_logged_or_stored(
    canary: Canary, procs: Procs, tmp_path: Path
) -> None:
    queue = unique("q")
    spools = [tmp_path / "spool-info", tmp_path / "spool-debug"]
    base = clean_env({"HYPERO_DB": canary.db, "HYPERO_BROKER": canary.broker})
    for spool, level in zip(spools, ("INFO", "DEBUG"), strict=True):
        procs.start([sys.executable, "-m", "hypero", "worker", "--queues", queue,
                     "--concurrency", "2", "--loglevel", level, "--name",
                     f"{unique('w')}@localhost"], {**base, "HYPERO_SPOOL": str(spool)},
                    f"worker-{level}")
    path = write_spec(tmp_path, f"""
battery: canary
trial: {REPO / 'tests' / 'test_security.py'}:leaky
method: grid
queue: {queue}
metric: {{name: score, goal: maximize}}
parameters:
  k: {{values: [0, 1, 2]}}
""")
    plain = clean_env()  # the URLs given as options, as a user types them
    urls = ["--db", canary.db, "--broker", canary.broker]
    outputs = {
        "run": hypero_cli(["run", str(path), *urls], plain, timeout=120),
        "status": hypero_cli(["status", *urls], plain),
        "top": hypero_cli(["top", "canary", *urls], plain),
        "export": hypero_cli(["export", "canary", "--db", canary.db], plain),
        "check": hypero_cli(["check", *urls], plain),
        "wrong database": hypero_cli(["status", "--db", canary.db + "-nope"], plain),
        "unreachable": hypero_cli(["status", "--db", canary.elsewhere(canary.db)], plain),
        "bad port": hypero_cli(["status", "--db", canary.elsewhere(canary.db, "notaport")],
                               plain),
        "unreachable broker": hypero_cli(["run", str(path), "--detach", "--db", canary.db,
                                          "--broker", canary.elsewhere(canary.broker)], plain),
        "worker without db": hypero_cli(["worker", "--queues", queue, "--db",
                                         canary.elsewhere(canary.db), "--broker", canary.broker],
                                        plain),
    }
    logs = procs.logs(tail=100_000)
    cmdlines = {pid: _cmdline(pid) for _, p, _ in procs.started for pid in _group(p.pid)}
    stored = _stored_text(canary)
    spooled = "".join(f.read_text() for s in spools for f in s.rglob("*") if f.is_file())

    run = outputs["run"]
    assert run.returncode == 1, run.stdout + run.stderr + logs  # k=1 failed, as meant
    assert "2 completed, 1 failed" in run.stdout
    assert outputs["export"].stdout.count("\n") == 4  # header + 3 trials
    for name, r in outputs.items():
        canary.assert_absent(r.stdout + r.stderr, f"the output of hypero {name}")
    for name in ("wrong database", "unreachable", "bad port", "worker without db"):
        assert outputs[name].returncode in (1, 2) and "hypero: error:" in outputs[name].stderr
    assert outputs["check"].returncode == 0, outputs["check"].stdout
    assert "DEBUG" in logs and "hypero.run_trial" in logs
    canary.assert_absent(logs, "a worker log")
    assert len(cmdlines) >= 4  # two workers and their pool processes
    for pid, line in cmdlines.items():
        canary.assert_absent(line, f"the command line of process {pid}")
    for table, text in stored.items():
        canary.assert_absent(text, f"table {table}")
    assert "cannot reach postgresql://canary_role:***@127.0.0.1" in stored["experiment"]
    assert "(broker redis://:***@127.0.0.1" in stored["experiment"]
    canary.assert_absent(spooled, "a spool file")


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (a worker and its pool)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


# -- messages: JSON, a hex id, no result backend --------------------------------------------------


def test_the_configured_app_accepts_json_only_and_keeps_no_results() -> None:
    settings = config.Settings(broker="redis://127.0.0.1:6379/0")
    probe = Celery(unique("probe"))
    assert configure(probe, settings) is probe  # what hypero run and hypero worker do to app
    conf = probe.conf
    assert list(conf.accept_content) == ["json"]
    assert conf.result_accept_content in (None, ["json"])  # None: accept_content's
    assert conf.task_serializer == "json" and conf.event_serializer == "json"
    assert conf.result_backend is None and conf.task_ignore_result is True
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    hypero_tasks = sorted(t for t in app.tasks if not t.startswith("celery."))
    assert hypero_tasks == [TASK]
    assert app.tasks[TASK].ignore_result


def test_a_message_carries_a_hex_id_in_json_and_nothing_to_import(tmp_path: Path) -> None:
    try:
        server = services.start_throwaway_redis(tmp_path)
    except services.ServiceUnavailable as e:
        services.unavailable(f"Redis: {e}")
    queue, url = unique("q"), f"{server.url}/0"
    try:
        publish(configure(Celery(unique("probe")), config.Settings(broker=url), queue),
                [41, 42], queue)
        with redis.Redis.from_url(url) as client:
            raw = client.lrange(queue, 0, -1)
    finally:
        server.close()
    assert len(raw) == 2
    for item in raw:
        msg = json.loads(item)
        assert msg["content-type"] == "application/json"
        assert msg["headers"]["task"] == TASK
        args, kwargs, _ = json.loads(_body(msg))
        assert args in ([41], [42]) and kwargs == {}
    # what a message carries is a hex id or nothing: an import path is refused before any use
    for bad in ("os:system", ["tests.trials.basic", "train"], True, 4.2):
        assert run_trial.run(bad) == "rejected"


def _body(msg: dict[str, Any]) -> str:
    import base64

    body = msg["body"]
    return base64.b64decode(body).decode() if msg["properties"]["body_encoding"] == "base64" \
        else str(body)


def test_redis_requirepass_fixture_really_asks_for_the_password(canary: Canary) -> None:
    no_auth = canary.broker.replace(f":{quote(CANARY, safe='')}@", "")
    assert not services.redis_answers(no_auth)
    with redis.Redis.from_url(canary.broker) as client:
        assert client.ping()
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(canary.db.replace(quote(CANARY, safe=""), "wrong"), connect_timeout=5)
    assert time.monotonic() - started < 5
