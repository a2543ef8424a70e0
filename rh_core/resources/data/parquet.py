"""Tables on disk: a folder of Parquet files (``part-<time>-<n>.parquet``), written in parts
of about :data:`PART_BYTES` and read back as one table or as a stream of record batches, from
this machine, object storage or a cluster. pandas frames keep their dtypes and index: every part
of a write carries the whole frame's pandas metadata. Needs pyarrow (the data extra)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator

from rh_core import errors
from rh_core.resources.data import systems, transfer
from rh_core.resources.data.places import ClusterPlace, LocalPlace, StoragePlace
from rh_core.transport.staging import move_into_place, staged

#: About how much Arrow memory one part file holds.
PART_BYTES = 128 << 20
SUFFIX = ".parquet"


def pyarrow():
    """``(pyarrow, pyarrow.parquet, pyarrow.dataset)``, or MissingDependencyError."""
    try:
        # pyarrow is an optional dependency (the data extra), needed only for tables.
        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
    except ImportError:
        raise errors.MissingDependencyError(f"tables need pyarrow: {systems.EXTRA}") from None
    return pa, pq, ds


def parts(data: Any) -> Iterator:
    """``data`` (a pyarrow Table or RecordBatch, a pandas DataFrame, a dict of columns) as Arrow
    tables of about PART_BYTES each, all with the same schema and pandas metadata."""
    pa, _, _ = pyarrow()
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif isinstance(data, dict):
        data = pa.table(data)
    if isinstance(data, pa.Table):
        step = _rows_per_part(data.num_rows, data.nbytes)
        for start in range(0, max(data.num_rows, 1), step):
            yield data.slice(start, step)
        return
    if type(data).__name__ == "DataFrame" and hasattr(data, "iloc"):
        schema = pa.Schema.from_pandas(data, preserve_index=None)
        step = _rows_per_part(len(data), int(data.memory_usage(deep=False).sum()))
        for start in range(0, max(len(data), 1), step):
            part = pa.Table.from_pandas(data.iloc[start:start + step], schema=schema,
                                        preserve_index=None)
            yield part.replace_schema_metadata(schema.metadata)
        return
    raise errors.ConfigError(f"a table takes a pandas DataFrame, a pyarrow Table or RecordBatch, "
                             f"or a dict of columns; got {type(data).__name__}")


def _rows_per_part(rows: int, nbytes: int) -> int:
    if rows == 0 or nbytes <= PART_BYTES:
        return max(rows, 1)
    return max(1, rows * PART_BYTES // nbytes)


def write(place, path: str, data: Any) -> list[str]:
    """Add ``data`` to the table at ``path`` as new part files; their names."""
    pa, pq, _ = pyarrow()
    local = local_view(place, path)
    if isinstance(place, StoragePlace):
        names = []
        with systems.storage_errors(path):
            for part, name in _numbered(data):
                with place.fs.open(place.key(place.join(path, name)), "wb") as f:
                    pq.write_table(part, f)  # the object appears whole when closed
                names.append(name)
        return names
    if local is not None:  # written beside the folder, then moved in
        dest = Path(local)
        with staged(dest) as staging:
            names = _write_parts(pq, data, staging)
            move_into_place(staging, dest, overwrite=False)
            return names
    tmp = Path(tempfile.mkdtemp(prefix="rh-table-"))
    try:
        names = _write_parts(pq, data, tmp)
        # New parts have new names: nothing is replaced (and rsync may carry them).
        transfer.copy(LocalPlace(), str(tmp), place, path, folder=True, overwrite=True)
        return names
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _numbered(data: Any):
    """Each part of ``data`` with its file name (named in the order written)."""
    stamp = time.time_ns()
    for i, part in enumerate(parts(data)):
        yield part, f"part-{stamp:020d}-{i:05d}{SUFFIX}"


def _write_parts(pq, data: Any, folder: Path) -> list[str]:
    names = []
    for part, name in _numbered(data):
        pq.write_table(part, folder / name)
        names.append(name)
    return names


def local_view(place, path: str) -> str | None:
    """The table's folder as a path of this machine, when its files are here (this machine, or
    a cluster whose server shares its files); else None."""
    if isinstance(place, LocalPlace):
        return path
    if isinstance(place, ClusterPlace) and transfer.shares_files(place.cluster):
        return place.abspath(path)
    return None


def part_names(place, path: str) -> list[str]:
    """The part files of the table, in the order they were written."""
    entries = place.ls(path)
    return sorted(e["name"] for e in entries if e["kind"] == "file" and e["name"].endswith(SUFFIX))


def _dataset(place, path: str):
    pa, _, ds = pyarrow()
    names = part_names(place, path)
    if not names:
        raise errors.DataNotFoundError(f"no table at {path} on {place.where()}: no {SUFFIX} files")
    local = local_view(place, path)
    if local is not None:
        return ds.dataset([os.path.join(local, n) for n in names], format="parquet")
    if isinstance(place, StoragePlace):
        from pyarrow.fs import FSSpecHandler, PyFileSystem  # optional: pyarrow, as above

        fs = PyFileSystem(FSSpecHandler(place.fs))
        return ds.dataset([place.key(place.join(path, n)) for n in names], format="parquet",
                          filesystem=fs)
    return None


def read(place, path: str):
    """The whole table (a pyarrow Table)."""
    with systems.storage_errors(path) if isinstance(place, StoragePlace) else nullcontext():
        dataset = _dataset(place, path)
        if dataset is not None:
            return dataset.to_table()
    tmp = tempfile.mkdtemp(prefix="rh-table-")
    try:  # a remote cluster's table comes here first
        transfer.copy(place, path, LocalPlace(), tmp, folder=True)
        return read(LocalPlace(), tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stream(place, path: str, batch_size: int) -> Iterator:
    """Record batches of at most ``batch_size`` rows, read part by part (never the whole table
    in memory; a remote cluster's parts are fetched one at a time)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise errors.ConfigError(f"batch_size must be a positive number of rows, got {batch_size!r}")
    dataset = _dataset(place, path)
    if dataset is not None:
        yield from dataset.to_batches(batch_size=batch_size)
        return
    _, _, ds = pyarrow()
    tmp = tempfile.mkdtemp(prefix="rh-table-")
    try:
        for name in part_names(place, path):
            local = os.path.join(tmp, name)
            transfer.copy(place, place.join(path, name), LocalPlace(), local, folder=False)
            yield from ds.dataset(local, format="parquet").to_batches(batch_size=batch_size)
            os.unlink(local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
