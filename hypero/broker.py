"""What the broker holds (queue depth, pending trials, live workers) and the embedded broker."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery import Celery

from hypero.errors import ConfigError

_PRIORITY_SEP = "\x06\x16"


def _redis(celery: Celery) -> Any | None:
    url = str(celery.conf.broker_url or "")
    if url.startswith("redis+socket://"):
        import redis

        return redis.Redis(unix_socket_path=url[len("redis+socket://"):])
    if url.startswith(("redis://", "rediss://")):
        import redis

        return redis.Redis.from_url(url)
    return None


def _queue_keys(client: Any, queue: str) -> list[str]:
    keys = [queue] + [f"{queue}{_PRIORITY_SEP}{p}" for p in range(1, 10)]
    return [k for k in keys if client.exists(k)]


def depth(celery: Celery, queue: str) -> int | None:
    """Messages waiting in ``queue`` (None if the broker cannot say)."""
    client = _redis(celery)
    try:
        if client is not None:
            return int(sum(client.llen(k) for k in _queue_keys(client, queue)))
        with celery.connection_for_write() as conn:
            _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
            return int(count)
    except Exception:
        return None


def _hex_of(raw: bytes | str) -> int | None:
    try:
        msg = json.loads(raw)
        if isinstance(msg, list):  # the unacked hash holds [message, exchange, routing key]
            msg = msg[0]
        tid = str(msg["headers"]["id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    parts = tid.split("-")
    ok = len(parts) == 3 and parts[0] == "hypero" and parts[1].isdigit()
    return int(parts[1]) if ok else None


def pending_hex_ids(celery: Celery, queue: str) -> set[int] | None:
    """Hex ids the broker holds for ``queue``, waiting or unacknowledged; None if unknown."""
    client = _redis(celery)
    if client is None:
        return None
    held: set[int] = set()
    for key in _queue_keys(client, queue):
        for raw in client.lrange(key, 0, -1):
            h = _hex_of(raw)
            if h is not None:
                held.add(h)
    for raw in client.hvals("unacked"):
        h = _hex_of(raw)
        if h is not None:
            held.add(h)
    return held


def live_workers(celery: Celery, timeout: float = 0.5) -> dict[str, list[str]] | None:
    """``{worker name: [queues it consumes]}`` of the workers that answer (None if the broker
    cannot be asked)."""
    try:
        replies = celery.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:
        return None
    return {name: sorted(str(q.get("name")) for q in queues or []) for name, queues in
            sorted(replies.items())}


@contextlib.contextmanager
def embedded(workdir: Path | None = None) -> Iterator[str]:
    """A private broker for ``hypero run`` without one: ``redis-server`` on a unix socket when
    the binary exists, else the ``filesystem`` transport (lost messages come back through the
    lease). Yields its URL; stops it afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="hypero-broker-", dir=workdir))
    server = shutil.which("redis-server")
    proc = None
    try:
        if server:
            sock = tmp / "redis.sock"
            proc = subprocess.Popen(
                [server, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                 "--save", "", "--appendonly", "no", "--dir", str(tmp), "--logfile",
                 str(tmp / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ConfigError(f"embedded broker: redis-server did not start "
                                      f"(see {tmp / 'redis.log'})")
                time.sleep(0.02)
            yield f"redis+socket://{sock}"
        else:
            (tmp / "queue").mkdir()
            yield f"filesystem://{tmp / 'queue'}"
    finally:
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def transport_options(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and transport options for hypero's broker URL forms."""
    if url.startswith("filesystem://") and len(url) > len("filesystem://"):
        folder = url[len("filesystem://"):]
        os.makedirs(folder, exist_ok=True)
        return "filesystem://", {"data_folder_in": folder, "data_folder_out": folder}
    return url, {}
