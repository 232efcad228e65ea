"""Storage operations on batteries, versions, experiments, their documents and metrics.

The contract, for every method: statements are parameterised (names are data); driver errors
surface as :class:`StorageError`; a missing row is :class:`NotFound`. Get-or-create is race-safe
(``INSERT … ON CONFLICT DO NOTHING`` then ``SELECT``). A write that carries an ``attempt`` is
fenced: it happens only if the experiment is still ``running`` under that attempt number, and
the method returns ``False`` otherwise, writing nothing. Documents merge per key in one
transaction with the experiment row locked, so concurrent writers of one hex serialise.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from hypero.codec import ESCAPE
from hypero.config import redact
from hypero.db import Database, now
from hypero.errors import Conflict, NotFound, StorageError
from hypero.schema import DOCS, battery, experiment, metric, version

log = logging.getLogger("hypero")

#: How a document write treats keys the stored document already holds.
Mode = Literal["strict", "update", "keep"]
INITIAL_VERSION = "Initial battery version"
_CHUNK = 500


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def merge(kind: str, old: Mapping[str, Any], new: Mapping[str, Any], mode: Mode) -> dict[str, Any]:
    """``old`` with ``new``'s keys merged in by ``mode``; :class:`Conflict` on a strict clash."""
    if mode == "strict":
        clash = sorted(k for k in new if k in old)
        if clash:
            raise Conflict(
                f"{kind} already has {', '.join(map(repr, clash))}: "
                f"pass update=True to overwrite"
            )
    if mode == "keep":
        return {**new, **old}
    return {**old, **new}


class Store:
    """Storage operations over one :class:`~hypero.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        #: statements a worker runs for every trial, built once (building one costs more than
        #: running it)
        self._built: dict[Any, Any] = {}

    def _insert(self, table: sa.Table) -> Any:
        mod = postgresql if self.db.backend == "postgresql" else sqlite
        return mod.insert(table)

    # -- batteries and versions -----------------------------------------------------------------

    def battery_id(self, name: str, create: bool = True) -> int:
        """The id of battery ``name``, created if missing (else :class:`NotFound`)."""
        q = sa.select(battery.c.id).where(battery.c.name == name)
        with self.db.read() as c:
            found = c.execute(q).scalar()
        if found is not None:
            return int(found)
        if not create:
            raise NotFound(f"no battery named {name!r}")
        ins = self._insert(battery).values(name=name, created_at=now())
        with self.db.write() as c:
            c.execute(ins.on_conflict_do_nothing())  # on PostgreSQL, unique on md5(name)
            return int(c.execute(q).scalar_one())

    def battery_name(self, battery_id: int) -> str:
        with self.db.read() as c:
            name = c.execute(sa.select(battery.c.name).where(battery.c.id == battery_id)).scalar()
        if name is None:
            raise NotFound(f"no battery with id {battery_id}")
        return str(name)

    def batteries(self) -> list[tuple[int, str]]:
        with self.db.read() as c:
            rows = c.execute(sa.select(battery.c.id, battery.c.name).order_by(battery.c.id))
            return [(int(i), str(n)) for i, n in rows]

    def version_id(self, battery_id: int, description: str, create: bool = True) -> int:
        """The id of that version of the battery, created if missing (else :class:`NotFound`)."""
        q = sa.select(version.c.id).where(
            version.c.battery_id == battery_id, version.c.description == description
        )
        with self.db.read() as c:
            found = c.execute(q).scalar()
        if found is not None:
            return int(found)
        if not create:
            raise NotFound(f"battery {battery_id} has no version {description!r}")
        ins = self._insert(version).values(
            battery_id=battery_id, description=description, created_at=now()
        )
        with self.db.write() as c:
            c.execute(ins.on_conflict_do_nothing())
            return int(c.execute(q).scalar_one())

    def versions(self, battery_id: int) -> list[tuple[int, str]]:
        """``(id, description)`` of every version of the battery, oldest first."""
        q = (
            sa.select(version.c.id, version.c.description)
            .where(version.c.battery_id == battery_id)
            .order_by(version.c.id)
        )
        with self.db.read() as c:
            return [(int(i), str(d)) for i, d in c.execute(q)]

    def version(self, version_id: int) -> tuple[int, str]:
        """``(battery_id, description)`` of a version."""
        q = sa.select(version.c.battery_id, version.c.description).where(
            version.c.id == version_id
        )
        with self.db.read() as c:
            row = c.execute(q).first()
        if row is None:
            raise NotFound(f"no version with id {version_id}")
        return int(row[0]), str(row[1])

    # -- experiments ----------------------------------------------------------------------------

    def create_experiments(
        self, battery_id: int, version_id: int, params: Sequence[Mapping[str, Any]],
        *, state: str = "running", sweep_id: int | None = None, first_index: int | None = None,
    ) -> list[int]:
        """Insert one experiment per params document (with empty meta/result); their ids."""
        ids: list[int] = []
        for part_no, part in enumerate(_chunks(params)):
            base = None if first_index is None else first_index + part_no * _CHUNK
            with self.db.write() as c:
                ids += self._insert_experiments(c, battery_id, version_id, part, state=state,
                                                sweep_id=sweep_id, first_index=base)
        return ids

    def _insert_experiments(
        self, c: Connection, battery_id: int, version_id: int, params: Sequence[Mapping[str, Any]],
        *, state: str, sweep_id: int | None, first_index: int | None,
    ) -> list[int]:
        """:meth:`create_experiments` inside the caller's transaction ``c``."""
        ids: list[int] = []
        t = now()
        for part_no, part in enumerate(_chunks(params)):
            base = None if first_index is None else first_index + part_no * _CHUNK
            rows = [
                {
                    "battery_id": battery_id, "version_id": version_id, "sweep_id": sweep_id,
                    "trial_index": None if base is None else base + i, "state": state,
                    "attempt": 0, "failures": 0, "cancel_requested": False, "created_at": t,
                }
                for i in range(len(part))
            ]
            new = c.execute(
                sa.insert(experiment).returning(experiment.c.id, sort_by_parameter_order=True),
                rows,
            ).scalars().all()
            for kind, table in DOCS.items():
                docs = part if kind == "param" else [{}] * len(part)
                c.execute(
                    sa.insert(table),
                    [{"hex_id": i, "doc": dict(d)} for i, d in zip(new, docs, strict=True)],
                )
            ids.extend(int(i) for i in new)
        return ids

    def experiment(self, hex_id: int) -> dict[str, Any]:
        """The experiment row as a dict; :class:`NotFound` for an unknown id."""
        with self.db.read() as c:
            row = c.execute(_EXPERIMENT, {"hid": hex_id}).mappings().first()
        if row is None:
            raise NotFound(f"no experiment with id {hex_id}")
        return dict(row)

    def experiment_ids(self, battery_id: int, version_ids: Sequence[int]) -> list[int]:
        q = (
            sa.select(experiment.c.id)
            .where(experiment.c.battery_id == battery_id, experiment.c.version_id.in_(version_ids))
            .order_by(experiment.c.id)
        )
        with self.db.read() as c:
            return [int(i) for i in c.execute(q).scalars()]

    def set_state(
        self, hex_id: int, state: str, *, error: str | None = None, attempt: int | None = None,
        expect: Sequence[str] | None = None,
    ) -> bool:
        """Compare-and-set the state (fenced by ``attempt`` and ``expect``ed states)."""
        q = sa.update(experiment).where(experiment.c.id == hex_id)
        if attempt is not None:
            q = q.where(experiment.c.attempt == attempt)
        if expect is not None:
            q = q.where(experiment.c.state.in_(expect))
        values: dict[str, Any] = {"state": state}
        if error is not None:
            values["error"] = redact(error)  # a trial's message may quote a URL
        if state in ("completed", "failed", "pruned", "cancelled"):
            values["finished_at"] = now()
        with self.db.write() as c:
            return bool(c.execute(q.values(**values)).rowcount)

    def index_result_key(self, name: str) -> bool:
        """On PostgreSQL, an index on the results' value of key ``name`` (a sweep's metric), so
        that the best trial is found without reading every result; True if it exists.

        It is made once per key name and kept. A build that cannot get its lock within a few
        seconds, or a user without the right to make it, only costs speed: False.
        """
        if self.db.backend != "postgresql":
            return False
        import psycopg
        from psycopg import sql

        index = f"result_key_{hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:16]}"
        ddl = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON result ((doc -> {}))").format(
            sql.Identifier(index), sql.Literal(name))
        try:
            with self.db.write() as c:
                raw: Any = c.connection.driver_connection  # DDL takes no bound parameters
                # made already: no lock on the results (even IF NOT EXISTS takes one first)
                if raw.execute("SELECT to_regclass(%s)", [index]).fetchone()[0] is not None:
                    return True
                raw.execute("SET LOCAL lock_timeout = '5s'")
                raw.execute(ddl)
        except (StorageError, psycopg.Error) as e:
            log.warning("hypero: no index on result key %r (status reads every result): %s",
                        name, e)
            return False
        return True

    # -- documents and metrics ------------------------------------------------------------------

    def docs(
        self, kind: str, hex_ids: Sequence[int], names: Sequence[str] | None = None
    ) -> dict[int, dict[str, Any]]:
        """``{hex_id: {name: value}}`` of the ``kind`` documents (param, meta or result)."""
        table = DOCS[kind]
        out: dict[int, dict[str, Any]] = {}
        with self.db.read() as c:
            for part in _chunks(list(hex_ids)):
                q = sa.select(table.c.hex_id, table.c.doc).where(table.c.hex_id.in_(part))
                for hid, doc in c.execute(q):
                    out[int(hid)] = doc if names is None else {n: doc[n] for n in names if n in doc}
        return out

    def record(
        self, hex_id: int, docs: Mapping[str, tuple[Mapping[str, Any], Mode]] | None = None,
        metrics: Sequence[tuple[str, float, float]] = (), attempt: int | None = None,
    ) -> bool:
        """Merge documents and upsert metric points in one transaction.

        ``docs`` maps ``param``/``meta``/``result`` to ``(values, mode)``. With ``attempt``, the
        write is fenced (see the module docstring) and ``False`` means nothing was written.
        """
        with self.db.write() as c:
            if not self._fenced(c, hex_id, attempt):
                return False
            for kind, (values, mode) in (docs or {}).items():
                if values:
                    self._merge_doc(c, kind, hex_id, values, mode)
            if metrics:
                self._upsert_metrics(c, hex_id, metrics)
        return True

    def _fenced(self, c: Connection, hex_id: int, attempt: int | None) -> bool:
        q = self.db.lock_row(experiment).with_only_columns(
            experiment.c.attempt, experiment.c.state
        ).where(experiment.c.id == hex_id)
        row = c.execute(q).first()
        if row is None:
            raise NotFound(f"no experiment with id {hex_id}")
        return attempt is None or (row.attempt == attempt and row.state == "running")

    def _merge_doc(
        self, c: Connection, kind: str, hex_id: int, values: Mapping[str, Any], mode: Mode
    ) -> None:
        table = DOCS[kind]
        if mode != "strict" and self.db.backend == "postgresql" and ESCAPE not in values:
            c.execute(self._merge_statement(kind, mode), {"hex_id": hex_id, "doc": dict(values)})
            return
        old = c.execute(sa.select(table.c.doc).where(table.c.hex_id == hex_id)).scalar()
        doc = merge(kind, old or {}, values, mode)
        if old is None:
            c.execute(sa.insert(table).values(hex_id=hex_id, doc=doc))
        elif doc != old:
            c.execute(sa.update(table).where(table.c.hex_id == hex_id).values(doc=doc))

    def _merge_statement(self, kind: str, mode: Mode) -> Any:
        """PostgreSQL's merge of a document in one statement: jsonb ``||`` merges top-level
        keys as :func:`merge` does (``keep``: the stored values win)."""
        key = ("merge", kind, mode)
        if key not in self._built:
            table = DOCS[kind]
            ins = postgresql.insert(table)
            new, old = ins.excluded.doc, table.c.doc
            merged = new.op("||")(old) if mode == "keep" else old.op("||")(new)
            self._built[key] = ins.on_conflict_do_update(index_elements=[table.c.hex_id],
                                                         set_={"doc": merged})
        return self._built[key]

    def _upsert_metrics(
        self, c: Connection, hex_id: int, points: Sequence[tuple[str, float, float]]
    ) -> None:
        # the last value logged for a (name, step) wins, also across attempts of a trial
        latest = {(n, float(s)): v for n, s, v in points}
        rows = [
            {"hex_id": hex_id, "name": n, "step": s, "value": None if v != v else v}
            for (n, s), v in latest.items()
        ]
        if "metrics" not in self._built:
            ins = self._insert(metric)
            name: Any = metric.c.name
            if self.db.backend == "postgresql":
                name = sa.func.md5(metric.c.name)  # migration 0002's unique index (long names)
            self._built["metrics"] = ins.on_conflict_do_update(
                index_elements=[metric.c.hex_id, name, metric.c.step],
                set_={"value": ins.excluded.value},
            )
        c.execute(self._built["metrics"], rows)

    def metrics(
        self, hex_ids: Sequence[int], names: Sequence[str] | None = None
    ) -> dict[int, dict[str, list[tuple[float | int, float]]]]:
        """``{hex_id: {name: [(step, value), …]}}`` ordered by step; NaN where NULL."""
        out: dict[int, dict[str, list[tuple[float | int, float]]]] = {i: {} for i in hex_ids}
        with self.db.read() as c:
            for part in _chunks(list(hex_ids)):
                q = sa.select(metric.c.hex_id, metric.c.name, metric.c.step, metric.c.value).where(
                    metric.c.hex_id.in_(part)
                )
                if names is not None:
                    q = q.where(metric.c.name.in_(list(names)))
                q = q.order_by(metric.c.hex_id, metric.c.name, metric.c.step)
                for hid, name, step, value in c.execute(q):
                    s = int(step) if float(step).is_integer() else float(step)
                    v = float("nan") if value is None else float(value)
                    out[int(hid)].setdefault(name, []).append((s, v))
        return out


_EXPERIMENT = sa.select(experiment).where(experiment.c.id == sa.bindparam("hid"))
