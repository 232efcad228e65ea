"""A worker's local spool: the end of an attempt, kept on disk while the database is away.

Each record is one JSON file, written to a temporary name, fsynced and renamed, so that a record
is either whole or absent. The supervisor deletes it once the database has taken it; a worker
that starts replays what a dead one left (the write is fenced by the attempt, so a replay of a
record that was already written, or was overtaken by a newer attempt, changes nothing).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypero import codec


def default_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "hypero" / "spool"


def for_store(root: Path | None, db: str, schema: str) -> Path:
    """One spool directory per store, so that a record is never replayed into another one."""
    from hypero.config import redact

    # the redacted URL: a directory name must not carry even a hash of the password
    key = hashlib.sha256(f"{redact(db)}|{schema}".encode()).hexdigest()[:16]
    return (root if root is not None else default_dir()) / key


class Spool:
    """A directory of pending records. The process that writes a record holds a lock on it
    until the record is taken, so another process replays only what a dead one left."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_dir()
        self._held: dict[Path, int] = {}

    def put(self, name: str, record: dict[str, Any]) -> Path:
        """Write ``record`` durably as ``name``.json; its path."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path)
        with os.fdopen(fd, "w") as fh:
            fh.write(codec.dumps(record))
            fh.flush()
            os.fsync(fh.fileno())
        final = self.path / f"{name}.json"
        os.replace(tmp, final)
        lock = os.open(final, os.O_RDONLY)
        fcntl.flock(lock, fcntl.LOCK_EX)
        self._held[final] = lock
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return final

    def drop(self, path: Path) -> None:
        """The record was taken: delete it and let go of its lock."""
        path.unlink(missing_ok=True)
        self.release(path)

    def release(self, path: Path) -> None:
        lock = self._held.pop(path, None)
        if lock is not None:
            os.close(lock)

    def pending(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Records left on disk, oldest first (unreadable ones are skipped, not deleted)."""
        if not self.path.is_dir():
            return
        for p in sorted(self.path.glob("*.json"), key=lambda q: q.stat().st_mtime):
            try:
                lock = os.open(p, os.O_RDONLY)
            except OSError:
                continue  # taken meanwhile
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue  # its writer is alive and still retrying
            self._held[p] = lock
            try:
                rec = codec.loads(p.read_text())
            except (OSError, ValueError):
                self.release(p)
                continue
            yield p, rec
