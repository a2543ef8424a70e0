"""Tables: ``rh.table(data=df)`` keeps a pandas DataFrame or an Arrow table as Parquet files (in
parts) on this machine, in object storage or on a cluster; ``t.data`` reads it back as a pyarrow
Table, ``t.stream()`` as record batches, ``t.write()`` adds rows, ``.to()`` copies the files.
Passed to a function on a cluster, a table arrives as a pyarrow Table."""

from __future__ import annotations

from typing import Any, ClassVar, Iterator

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.data import parquet
from rh_core.resources.data.blob import default_path
from rh_core.resources.data.common import Data
from rh_core.resources.data.folder import load_kind, resolve_aliases


@attrs.define(kw_only=True, slots=False)
class Table(Data):
    """A table: a folder of Parquet files in a system."""

    resource_type: ClassVar[str] = "table"

    @property
    def data(self):
        """The whole table, as a pyarrow Table (pandas dtypes and index come back with
        ``to_pandas()``)."""
        return parquet.read(self.place, self._need_path())

    def to_pandas(self):
        """The whole table as a pandas DataFrame, with the dtypes and index it was written with."""
        return self.data.to_pandas()

    def stream(self, batch_size: int = 10_000) -> Iterator:
        """The rows as pyarrow RecordBatches of at most ``batch_size`` rows, read part by part
        (the table is never loaded whole)."""
        return parquet.stream(self.place, self._need_path(), batch_size)

    def write(self, data: Any) -> Table:
        """Add rows (a DataFrame, an Arrow table or batch, a dict of columns) as new parts."""
        parquet.write(self.place, self._need_path(), data)
        return self


def table(data: Any = None, name: str | None = None, path: str | None = None, system: Any = None,
          dryrun: bool = False, data_config: dict | None = None, *, fs: Any = None,
          url: str | None = None) -> Table:
    """A table: ``rh.table(data=df)`` writes it as Parquet (under the rh home when no ``path``
    is given) on this machine, a cluster (``system=``) or object storage (``system="s3"`` with a
    ``s3://`` path); without data, the table at ``path``; ``rh.table(name=...)`` loads a saved
    one. ``fs=``/``url=``/``dryrun`` as for :func:`folder`."""
    path, system = resolve_aliases(path, system, fs, url)
    if data is None and path is None and system is None and name:
        return load_kind(name, Table)
    made = Table(name=name, path=path, system=system, data_config=data_config or {})
    if made.path is None:
        if data is None:
            raise ConfigError("rh.table needs data=, a path=, or the name of a saved table")
        made.path = default_path(made.place, "table")
    if data is not None:
        made.write(data)
    return made
