"""A battery: experiments grouped by name, with code versions; the seed's query API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from hypero.errors import NotFound

if TYPE_CHECKING:
    from hypero.connection import Connection
    from hypero.experiment import Experiment

VersionRef = int | str


class Battery:
    """A named group of experiments at a current version; see :meth:`Connection.battery`."""

    def __init__(
        self, conn: Connection, battery_id: int, name: str, version_id: int, version: str
    ) -> None:
        self._conn = conn
        self.id = battery_id
        self.name = name
        self.version_id = version_id
        #: the current version's description
        self.version = version

    def __repr__(self) -> str:
        return f"<hypero.Battery id={self.id} name={self.name!r} version={self.version!r}>"

    def set_version(self, description: str) -> int:
        """Get or create version ``description``; it becomes this battery's current one."""
        self.version_id = self._conn.store.version_id(self.id, description)
        self.version = description
        return self.version_id

    def version_id_of(self, ref: VersionRef) -> int:
        """The id of a version given by id or description (:class:`NotFound` if unknown).

        A string is a description first; one of digits that names none is taken as an id.
        """
        versions = self._conn.store.versions(self.id)
        for vid, desc in versions:
            if (isinstance(ref, int) and vid == ref) or (isinstance(ref, str) and desc == ref):
                return vid
        if isinstance(ref, str) and ref.isdigit() and any(v == int(ref) for v, _ in versions):
            return int(ref)
        raise NotFound(f"battery {self.name!r} has no version {ref!r}")

    def versions(self, min_version: VersionRef | None = None) -> list[int]:
        """Version ids in order; from ``min_version`` (an id or description) onward if given."""
        ids = [vid for vid, _ in self._conn.store.versions(self.id)]
        if min_version is None:
            return ids
        start = self.version_id_of(min_version)
        return [v for v in ids if v >= start]

    def experiments(self, versions: Sequence[VersionRef] | None = None) -> list[int]:
        """Hex ids of these versions (default: the current version), in id order."""
        if isinstance(versions, str | int):
            versions = [versions]  # one version, not its letters
        vids = [self.version_id] if versions is None else [self.version_id_of(v) for v in versions]
        return self._conn.store.experiment_ids(self.id, vids)

    def experiment(self, seed: int | None = None) -> Experiment:
        """A new hyper-experiment of the current version, in state ``running``."""
        from hypero.experiment import Experiment

        (hid,) = self._conn.store.create_experiments(self.id, self.version_id, [{}])
        row = {"id": hid, "battery_id": self.id, "version_id": self.version_id,
               "sweep_id": None, "attempt": 0}
        return Experiment(self._conn, row, {}, seed=seed)

    def _docs(self, kind: str, hex_ids: Sequence[int], names: Sequence[str] | None) -> Any:
        if isinstance(names, str):
            names = [names]
        if isinstance(hex_ids, int):
            hex_ids = [hex_ids]
        self._conn.flush()
        return self._conn.store.docs(kind, list(hex_ids), names)

    def get_param(
        self, hex_ids: Sequence[int], names: Sequence[str] | None = None
    ) -> dict[int, dict[str, Any]]:
        """``{hex_id: {name: value}}`` of their params (only ``names`` if given)."""
        return self._docs("param", hex_ids, names)  # type: ignore[no-any-return]

    def get_meta(
        self, hex_ids: Sequence[int], names: Sequence[str] | None = None
    ) -> dict[int, dict[str, Any]]:
        return self._docs("meta", hex_ids, names)  # type: ignore[no-any-return]

    def get_result(
        self, hex_ids: Sequence[int], names: Sequence[str] | None = None
    ) -> dict[int, dict[str, Any]]:
        return self._docs("result", hex_ids, names)  # type: ignore[no-any-return]

    def get_metrics(
        self, hex_ids: Sequence[int], names: Sequence[str] | None = None
    ) -> dict[int, dict[str, list[tuple[Any, float]]]]:
        """``{hex_id: {name: [(step, value), …]}}`` of what ``hex.log`` recorded, by step."""
        self._conn.flush()
        return self._conn.store.metrics(list(hex_ids), names)

    def export_table(
        self, version: VersionRef | None = None, min_version: bool = False,
        params: str | Sequence[str] | None = "*", metas: str | Sequence[str] | None = "*",
        results: str | Sequence[str] | None = "*", order_by: str = "hex_id",
        ascending: bool = True,
    ) -> tuple[list[list[Any]], list[str]]:
        """The seed's export: ``(rows, columns)``; see DESIGN §3 for the columns and order."""
        from hypero.export import table

        vids = self._version_ids(version, min_version)
        hex_ids = self._conn.store.experiment_ids(self.id, vids)
        self._conn.flush()
        return table(self._conn.store, hex_ids, params, results, metas, order_by, ascending)

    def export_csv(
        self, out: IO[str], version: VersionRef | None = None, min_version: bool = False,
        params: str | Sequence[str] | None = "*", metas: str | Sequence[str] | None = "*",
        results: str | Sequence[str] | None = "*", order_by: str = "hex_id",
        ascending: bool = True,
    ) -> int:
        """:meth:`export_table` written as CSV to the text stream ``out`` (open it with
        ``newline=""``), streamed from the database on PostgreSQL; how many rows."""
        from hypero.export import write_csv

        vids = self._version_ids(version, min_version)
        self._conn.flush()
        return write_csv(self._conn.store, self.id, vids, params, results, metas, order_by,
                         ascending, out)

    def _version_ids(self, version: VersionRef | None, min_version: bool) -> list[int]:
        vid = self.version_id if version is None else self.version_id_of(version)
        return self.versions(vid) if min_version else [vid]

    def to_dataframe(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`export_table` as a pandas DataFrame (``pip install hypero[pandas]``)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("to_dataframe needs pandas: pip install 'hypero[pandas]'") from e
        rows, columns = self.export_table(*args, **kwargs)
        return pd.DataFrame(rows, columns=columns)
