"""Run hypero in several spawned processes at once, released together by a barrier.

The functions the children run live here, so that a child imports only this module and hypero
(not pytest and the test modules). Every child opens its own connection: an engine is never
shared across processes.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import hypero

BARRIER_TIMEOUT = 60.0


def run_together(
    fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], timeout: float = 90.0,
    *, own_barrier: bool = False,
) -> list[Any]:
    """``[fn(*a) for a in args]``, each call in its own spawned process, all started at once.

    The children wait on one barrier before calling ``fn``, so their calls overlap; with
    ``own_barrier`` they call ``fn(barrier, *a)`` instead, for ``fn`` to wait where it wants
    (after connecting, say). Raises AssertionError naming every child that failed.
    """
    ctx = mp.get_context("spawn")
    results: mp.Queue[tuple[int, bool, Any]] = ctx.Queue()
    barrier = ctx.Barrier(len(args))
    procs = [
        ctx.Process(target=_child, args=(fn, barrier, results, i, a, own_barrier), daemon=True)
        for i, a in enumerate(args)
    ]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in procs:
            i, ok, value = results.get(timeout=timeout)
            if ok:
                out[i] = value
            else:
                errors.append(f"child {i}:\n{value}")
    except queue.Empty:
        errors.append(f"only {len(out) + len(errors)} of {len(procs)} children answered")
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    assert not errors, "\n".join(errors)
    return [out[i] for i in range(len(args))]


def _child(
    fn: Callable[..., Any], barrier: Any, results: Any, index: int, args: tuple[Any, ...],
    own_barrier: bool,
) -> None:
    try:
        if own_barrier:
            results.put((index, True, fn(barrier, *args)))
            return
        barrier.wait(BARRIER_TIMEOUT)
        results.put((index, True, fn(*args)))
    except BaseException:
        results.put((index, False, traceback.format_exc()))


# -- what the children do ----------------------------------------------------------------------


def battery_ids(
    barrier: Any, url: str, schema: str, name: str, version: str | None
) -> tuple[int, int, str]:
    """Connect, wait for the others, get-or-create the battery: ``(id, version id, version)``."""
    with hypero.connect(url, schema=schema) as conn:
        conn.batteries()  # the pool holds an open connection: the race is on the battery alone
        barrier.wait(BARRIER_TIMEOUT)
        bat = conn.battery(name, version)
        return bat.id, bat.version_id, bat.version


def connect_and_record(url: str, schema: str, index: int) -> int:
    """Connect (migrating a fresh store), then record one experiment; its id."""
    with hypero.connect(url, schema=schema) as conn:
        with conn.battery("migrated", "v1").experiment() as hex:
            hex.hyper_param("child", index)
            hex.log(step=0, loss=float(index))
        return hex.id


def write_many(url: str, schema: str, index: int, n: int, points: int) -> list[int]:
    """Record ``n`` experiments with params, meta, results and ``points`` metric points each."""
    ids = []
    with hypero.connect(url, schema=schema) as conn:
        bat = conn.battery("writers", "v1")
        for k in range(n):
            with bat.experiment() as hex:
                hex.hyper_param("proc", index)
                hex.hyper_param("k", k)
                hex.uniform("x", 0.0, 1.0)
                hex.meta_data("writer", f"{index}/{k}")
                hex.result_maxima(train=index, valid=k)
                for step in range(points):
                    hex.log(step=step, loss=index + k / 100 + step)
            ids.append(hex.id)
    return ids


def write_same_hex(barrier: Any, url: str, schema: str, hex_id: int, index: int) -> None:
    """Reopen one hex, wait for the others, then merge a key into each document and log."""
    with hypero.connect(url, schema=schema) as conn:
        hex = conn.experiment(hex_id)
        hex.get_param()  # connected, pool warm
        barrier.wait(BARRIER_TIMEOUT)
        hex.set_result({f"r{index}": index})
        hex.set_meta({f"m{index}": index})
        hex.hyper_param(f"p{index}", index)
        hex.log(step=index, shared=float(index), **{f"own{index}": 1.0})
        hex.flush()
