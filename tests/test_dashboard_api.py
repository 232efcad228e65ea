"""The dashboard's JSON API, route by route, on both stores; and how its server binds.

The server is the real one (uvicorn in a thread, or ``hypero dashboard`` in a subprocess),
asked over HTTP like a user's script would.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

import hypero
from hypero import dispatcher, spec, sweeps
from hypero.dashboard.app import Server
from hypero.schema import metadata
from tests.conftest import Target
from tests.workers import REPO, celery_for, clean_env, trial, unique

pytestmark = pytest.mark.timeout(120)
NAME = 'api "battery" <b>bold</b> & co'
HOSTILE = "<script>alert(1)</script>"
SECRET = "s3cret-Pw-for-dashboard"
TRACEBACK = f"Traceback (most recent call last):\nRuntimeError: no postgresql://me:{SECRET}@db/x"


@dataclass
class Recorded:
    battery: int
    versions: list[int]
    sweep: int
    ids: list[int]  # sweep trials: completed ×3 (the 2nd NaN), failed, running, queued
    extra: int  # version v2, outside the sweep, with NaN and infinite curve points
    hostile: int


def record(conn: hypero.Connection) -> Recorded:
    bat = conn.battery(NAME, "v1")
    store, v1 = conn.store, bat.version_id
    metric = {"name": "valid", "goal": "maximize"}
    sid = sweeps.create_sweep(store, bat.id, v1, {"metric": metric, "queue": "hypero"}, 1, 6, "s1")
    params = [{"lr": 10.0 ** -k, "act": act} for k, act in
              enumerate(["relu", "tanh", "relu", "gelu", "relu", "tanh"], start=1)]
    params[2]["extra"] = 1  # a key only one trial has
    ids = store.create_experiments(bat.id, v1, params, state="queued", sweep_id=sid,
                                   first_index=0)
    for i, hid in enumerate(ids[:4]):
        attempt = sweeps.claim(store, hid, "w1@test", 60)
        assert attempt == 1
        if i < 3:
            sweeps.finish(store, hid, attempt, "completed",
                          docs={"result": ({"valid": [0.7, math.nan, 0.9][i]}, "update")},
                          metrics=[("loss", s, (i + 1) / (s + 1)) for s in range(4)])
        else:
            sweeps.finish(store, hid, attempt, "failed", error=TRACEBACK, failed_attempt=True)
    sweeps.claim(store, ids[4], "w2@test", 60)
    sweeps.set_sweep_state(store, sid, "running")
    bat.set_version("v2")
    with bat.experiment() as hex:
        hex.hyper_param("lr", 0.5)
        hex.set_result({"valid": 0.8, "curve": [1, 2]})
        hex.set_meta({"gpu": "A100"})
        for step, loss in enumerate([1.0, math.nan, math.inf, 0.5]):
            hex.log(step=step, loss=loss, acc=step / 4)
    hostile = conn.battery(HOSTILE)
    with hostile.experiment() as h2:
        h2.hyper_param(HOSTILE, HOSTILE)
    return Recorded(bat.id, [v1, bat.version_id], sid, ids, hex.id, hostile.id)


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None
        ) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def with_password(url: str) -> str:
    """``url`` with a password (SECRET unless it has one): a trust server ignores it."""
    parts = urlsplit(url)
    if parts.password or parts.scheme.startswith("sqlite"):
        return url
    netloc = f"{parts.username}:{quote(SECRET)}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def served(target: Target) -> Iterator[tuple[Server, hypero.Connection, Recorded, str]]:
    url = with_password(target.url)
    conn = hypero.connect(url, schema=target.schema)
    data = record(conn)
    with Server(conn) as server:
        yield server, conn, data, url
    conn.close()


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.bodies: list[bytes] = []

    def __call__(self, path: str, status: int = 200) -> Any:
        code, headers, body = get(self.base + path)
        self.bodies.append(body)
        assert code == status, (path, code, body[:300])
        assert headers["content-type"].startswith("application/json")
        return json.loads(body)


def test_batteries_and_battery(served) -> None:
    server, _, d, _ = served
    api = Api(server.url)
    listed = {b["name"]: b for b in api("/api/batteries")}
    assert listed[NAME] == {**listed[NAME], "id": d.battery, "versions": 2, "sweeps": 1,
                            "trials": 7, "live": 2}
    assert listed[HOSTILE]["trials"] == 1  # names come back verbatim
    info = api(f"/api/batteries/{d.battery}")
    assert info["name"] == NAME
    assert [(v["id"], v["description"], v["trials"]) for v in info["versions"]] == [
        (d.versions[0], "v1", 6), (d.versions[1], "v2", 1)]
    assert info["metric"] == {"name": "valid", "goal": "maximize"}
    assert info["keys"] == {"param": ["act", "extra", "lr"], "result": ["curve", "valid"]}
    assert api("/api/batteries/999999", 404) == {"error": "no battery with id 999999"}


def test_status_counts_match_the_database(served) -> None:
    server, conn, d, _ = served
    st = Api(server.url)(f"/api/batteries/{d.battery}/status")
    assert st["counts"] == {"queued": 1, "running": 1, "completed": 4, "failed": 1, "pruned": 0,
                            "cancelled": 0}
    assert st["total"] == 7
    (sw,) = st["sweeps"]
    assert sw["counts"] == sweeps.counts(conn.store, d.sweep)
    assert sw | {"rate": None, "eta": None} == sw | {
        "id": d.sweep, "name": "s1", "state": "running", "total": 6, "finished": 4,
        "version": "v1", "queue": "hypero", "depth": None, "workers": None,
        "best": {"id": d.ids[2], "value": 0.9}, "rate": None, "eta": None}
    assert sw["rate"] > 0 and sw["eta"] > 0


def test_trial_page_sorts_filters_and_pages_in_sql(served) -> None:
    server, _, d, _ = served
    api = Api(server.url)
    base = f"/api/batteries/{d.battery}/trials"
    default = api(base)  # the sweep metric's best first
    assert (default["sort"], default["order"]) == ("result:valid", "desc")
    assert [r["id"] for r in default["rows"]][:3] == [d.ids[2], d.extra, d.ids[0]]
    page = api(f"{base}?sort=id")
    assert page["total"] == 7 and [r["id"] for r in page["rows"]] == [*d.ids, d.extra]
    row = page["rows"][0]
    assert row | {"started_at": None, "finished_at": None} == {
        "id": d.ids[0], "version": d.versions[0], "sweep": d.sweep, "state": "completed",
        "attempt": 1, "worker": "w1@test", "started_at": None, "finished_at": None,
        "params": {"lr": 0.1, "act": "relu"}, "results": {"valid": 0.7}}
    assert page["rows"][1]["results"] == {"valid": "NaN"}  # JSON has no NaN
    ids = lambda q: [r["id"] for r in api(f"{base}?{q}")["rows"]]  # noqa: E731
    # numbers by value, missing and NaN last in either direction, then by id
    nan, none = [d.ids[1]], [d.ids[3], d.ids[4], d.ids[5]]
    assert ids("sort=result:valid&order=desc") == [d.ids[2], d.extra, d.ids[0], *nan, *none]
    assert ids("sort=result:valid") == [d.ids[0], d.extra, d.ids[2], *nan, *none]
    assert ids("sort=param:lr&order=desc") == [d.extra, *d.ids]
    assert ids("sort=param:act")[:3] == [d.ids[3], d.ids[0], d.ids[2]]  # gelu, relu, relu
    assert ids("sort=param:act")[-1] == d.extra  # v2 has no act
    assert ids("sort=id&order=desc&limit=2&offset=1") == [d.ids[5], d.ids[4]]
    assert ids("sort=finished_at&order=desc&limit=1") == [d.extra]
    assert ids("state=failed,queued") == [d.ids[3], d.ids[5]]
    assert ids(f"version={d.versions[1]}") == [d.extra]
    assert ids(f"sweep={d.sweep}&state=running") == [d.ids[4]]
    assert api(f"{base}?state=completed&limit=1")["total"] == 4
    for query, message in [
        ("sort=lr", "sort: 'lr' is neither a column"), ("order=up", "order: must be asc"),
        ("limit=0", "limit: must be between 1 and 500"), ("offset=-1", "offset: must be >= 0"),
        ("state=done", "state: unknown 'done'"), ("version=x", "version: must be an integer"),
    ]:
        assert message in api(f"{base}?{query}", 400)["error"]
    api("/api/batteries/999999/trials", 404)


def test_a_key_with_quotes_and_dots_sorts_too(served) -> None:
    server, conn, d, _ = served
    bat = conn.battery(NAME)
    key = 'we"ird.key \\ name'
    made = []
    for v in [3, 1, 2]:
        with bat.experiment() as hex:
            hex.set_result({key: v})
            made.append(hex.id)
    rows = Api(server.url)(f"/api/batteries/{d.battery}/trials?state=completed&limit=3&"
                           f"order=asc&sort=result:{quote(key)}")["rows"]
    assert [r["results"][key] for r in rows] == [1, 2, 3]


def test_trial_detail_redacts_passwords_in_errors(served) -> None:
    server, _, d, _ = served
    api = Api(server.url)
    t = api(f"/api/trials/{d.ids[3]}")
    assert t["state"] == "failed" and t["attempt"] == 1 and t["failures"] == 1
    assert t["battery"] == {"id": d.battery, "name": NAME}
    assert t["version"] == {"id": d.versions[0], "description": "v1"}
    assert t["error"].startswith("Traceback") and SECRET not in t["error"]
    assert "postgresql://me:***@db/x" in t["error"]
    x = api(f"/api/trials/{d.extra}")
    assert x["params"] == {"lr": 0.5} and x["results"] == {"valid": 0.8, "curve": [1, 2]}
    assert x["meta"] == {"gpu": "A100"} and x["metrics"] == ["acc", "loss"]
    assert x["sweep"] is None and x["worker"] is None
    api("/api/trials/999999", 404)


def test_curves_and_points(served) -> None:
    server, _, d, _ = served
    api = Api(server.url)
    c = api(f"/api/curves?ids={d.extra},{d.ids[0]}&names=loss")
    assert c["names"] == ["acc", "loss"]
    assert c["curves"][str(d.extra)] == {
        "loss": [[0, 1.0], [1, "NaN"], [2, "Infinity"], [3, 0.5]]}
    assert c["curves"][str(d.ids[0])]["loss"][:2] == [[0, 1.0], [1, 0.5]]
    assert set(api(f"/api/curves?ids={d.extra}")["curves"][str(d.extra)]) == {"acc", "loss"}
    assert "at most 50" in api("/api/curves?ids=" + ",".join(map(str, range(1, 60))),
                               400)["error"]
    assert "ids: must be integers" in api("/api/curves?ids=1,x", 400)["error"]
    api("/api/curves?ids=999999", 404)
    p = api(f"/api/batteries/{d.battery}/points?x=param:lr&y=result:valid")
    assert p["ids"] == [d.extra, d.ids[2], d.ids[1], d.ids[0]]  # completed, newest first
    assert p["xs"] == [0.5, 0.001, 0.01, 0.1] and p["ys"] == [0.8, 0.9, "NaN", 0.7]
    assert "x and y" in api(f"/api/batteries/{d.battery}/points?x=param:lr", 400)["error"]
    assert "y: 'valid' must be" in api(
        f"/api/batteries/{d.battery}/points?x=param:lr&y=valid", 400)["error"]


def test_sweep_detail_lists_its_best_trials(served) -> None:
    server, _, d, _ = served
    api = Api(server.url)
    s = api(f"/api/sweeps/{d.sweep}")
    assert s["battery_id"] == d.battery and s["spec"]["metric"]["name"] == "valid"
    assert [r["id"] for r in s["top"]] == [d.ids[2], d.ids[0], d.ids[1]]
    assert s["counts"]["completed"] == 3
    api("/api/sweeps/999999", 404)


def test_openapi_describes_every_route(served) -> None:
    server, _, _, _ = served
    doc = Api(server.url)("/api/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/api/batteries", "/api/batteries/{id}", "/api/batteries/{id}/status",
        "/api/batteries/{id}/trials", "/api/batteries/{id}/points", "/api/sweeps/{id}",
        "/api/trials/{id}", "/api/curves", "/api/openapi.json"}
    for path, item in doc["paths"].items():
        assert set(item) == {"get"}, path
    refs = re.findall(r'"#/components/(\w+)/(\w+)"', json.dumps(doc))
    for kind, name in refs:
        assert name in doc["components"][kind], name


def _dump(conn: hypero.Connection) -> dict[str, list[Any]]:
    with conn.db.read() as c:
        return {t.name: [tuple(r) for r in c.execute(sa.select(t).order_by(*t.primary_key))]
                for t in metadata.sorted_tables}


def test_read_only_no_secret_and_guarded(served) -> None:
    """Every route, every method: nothing changes in the database, no response holds the URL or
    its password, writes are refused, and a foreign Host header (DNS rebinding) is refused."""
    server, conn, d, url = served
    before = _dump(conn)
    api = Api(server.url)
    paths = [
        "/api/openapi.json", "/api/batteries", f"/api/batteries/{d.battery}",
        f"/api/batteries/{d.battery}/status", f"/api/batteries/{d.battery}/trials",
        f"/api/batteries/{d.battery}/points?x=param:lr&y=result:valid",
        f"/api/sweeps/{d.sweep}", f"/api/trials/{d.ids[3]}", f"/api/curves?ids={d.extra}",
    ]
    for path in paths:
        api(path)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            code, _, body = get(server.url + path, method)
            assert code == 405, (method, path, code)
    assert api("/api/nope", 404) == {"error": "no such route"}
    for page in ("/", "/static/app.js", "/static/index.html"):
        code, headers, body = get(server.url + page)
        assert code == 200
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        api.bodies.append(body)
    assert _dump(conn) == before
    text = b"\n".join(api.bodies).decode()
    secrets = [url, url.split("://", 1)[1], conn.db.url]
    if conn.db.backend == "postgresql":
        secrets.append(SECRET)
    else:
        secrets.append(url.removeprefix("sqlite:///"))
    for secret in secrets:
        assert secret not in text
    code, _, body = get(server.url + "/api/batteries", headers={"Host": "evil.example:80"})
    assert code == 403
    port = urlsplit(server.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert get(server.url + "/api/batteries", headers={"Host": host})[0] == 200


# -- the command and the server's socket --------------------------------------------------------


def _dashboard(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``hypero dashboard ARGS``; (process, URL it printed, what it wrote to stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "hypero", "dashboard", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+/)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL in {line!r}: {proc.communicate()[1]}")
    return proc, m[1], ""


def _stop(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C: the server stops quietly with exit code 0; what it wrote to stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_command_binds_loopback_by_default_and_warns_otherwise(sqlite_target: Target) -> None:
    env = clean_env(sqlite_target.env())
    with sqlite_target.connect() as conn:
        conn.battery("cli battery")
    proc, url, _ = _dashboard(["--port", "0"], env)
    try:
        assert url.startswith("http://127.0.0.1:")
        code, _, body = get(url + "api/batteries")
        assert code == 200 and json.loads(body)[0]["name"] == "cli battery"
    finally:
        err = _stop(proc)
    assert "warning" not in err.lower()
    # any other address: served, but never silently
    proc, url, _ = _dashboard(["--host", "0.0.0.0", "--port", "0"], env)
    try:
        port = urlsplit(url).port
        assert url == f"http://0.0.0.0:{port}/"
        code, _, _ = get(f"http://127.0.0.1:{port}/api/batteries")
        assert code == 200
    finally:
        err = _stop(proc)
    assert "warning: the dashboard listens on 0.0.0.0, reachable from other machines" in err
    # a port in use: one line, exit 2
    with Server(hypero.connect(sqlite_target.url)) as busy:
        port = urlsplit(busy.url).port
        r = subprocess.run([sys.executable, "-m", "hypero", "dashboard", "--port", str(port)],
                           env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("hypero: error: --host/--port: cannot listen on 127.0.0.1:")
    assert r.stderr.count("\n") == 1


def test_broker_depth_and_live_workers(
    sqlite_target: Target, redis_clean_url: str, tmp_path: Path
) -> None:
    """With a broker, each sweep shows its queue's depth and the workers consuming it."""
    queue = unique("dash")
    path = tmp_path / "spec.yaml"
    path.write_text(f"battery: broker view\ntrial: {trial('basic.py:train')}\nrun_cap: 3\n"
                    f"queue: {queue}\nparameters:\n  lr: {{values: [1, 2, 3]}}\n")
    celery = celery_for(redis_clean_url, queue, sqlite_target)
    with sqlite_target.connect() as conn:
        sid = dispatcher.dispatch(conn, spec.load(path), celery, seed=1)
        bid = conn.store.battery_id("broker view", create=False)
        with Server(conn, celery=celery) as server:
            deadline = time.monotonic() + 20
            while True:
                (sw,) = Api(server.url)(f"/api/batteries/{bid}/status")["sweeps"]
                if sw["depth"] is not None and sw["workers"] is not None:
                    break
                assert time.monotonic() < deadline, sw
                time.sleep(0.2)
    assert sw["id"] == sid and sw["depth"] == 3 and sw["workers"] == []
