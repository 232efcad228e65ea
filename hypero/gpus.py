"""GPU slots of a worker host: which devices it offers and which a running trial holds.

A worker started with ``--gpus 0,1,2,3`` puts the list in ``HYPERO_GPUS``; each of its pool
processes takes the slots a trial needs by locking one file per device (``fcntl``), so no two
concurrent trials share a slot whatever process runs them, and a crashed process frees its
slots with its file descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hypero.errors import ConfigError


def detect() -> list[str]:
    """Every GPU this host shows: ``nvidia-smi -L``, else this process's CUDA_VISIBLE_DEVICES."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
        if found:
            return found
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]


def parse(spec: str | None) -> list[str]:
    """``--gpus``: ``all``, or a comma-separated list of device ids; [] for none."""
    if spec is None or spec.strip() == "":
        return []
    if spec.strip() == "all":
        found = detect()
        if not found:
            raise ConfigError("--gpus all: this host shows no GPU (nvidia-smi -L, "
                              "CUDA_VISIBLE_DEVICES)")
        return found
    ids = [s.strip() for s in spec.split(",")]
    if any(not s for s in ids) or len(set(ids)) != len(ids):
        raise ConfigError(f"--gpus: expected 'all' or distinct ids like 0,1,2 (got {spec!r})")
    return ids


def worker_slots() -> list[str]:
    return [s for s in os.environ.get("HYPERO_GPUS", "").split(",") if s]


def _lock_dir() -> Path:
    key = hashlib.sha1(os.environ.get("HYPERO_WORKER_NAME", "").encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"hypero-slots-{key}"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def slots(need: int) -> Iterator[list[str] | None]:
    """Hold ``need`` of this worker's GPU slots for a trial (waits for them to free up).

    Yields the device ids (``[]`` when the worker has no GPUs: the environment is left alone),
    or None when the worker can never offer that many.
    """
    offered = worker_slots()
    if not offered:
        yield []
        return
    if need > len(offered):
        yield None
        return
    held: list[tuple[str, int]] = []
    try:
        while len(held) < need:
            for dev in offered:
                if len(held) == need or any(d == dev for d, _ in held):
                    continue
                fd = os.open(_lock_dir() / f"gpu-{dev}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append((dev, fd))
                except BlockingIOError:
                    os.close(fd)
            if len(held) < need:
                time.sleep(0.2)
        yield [d for d, _ in held]
    finally:
        for _, fd in held:
            os.close(fd)
