"""Blobs and tables on this machine and on the real local cluster: bytes written and read, tables
kept as Parquet in parts with their pandas dtypes and index, streamed in batches, appended to,
copied, and what a function receives for them."""

from __future__ import annotations

import datafns
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import rh_core as rh
from rh_core.resources.data import parquet


def test_a_blob_here_and_on_the_cluster(local, rh_home, tmp_path):
    b = rh.blob(data=b"bytes", path=None, system="here")
    assert b.path.startswith(str(rh_home / "data" / "blobs"))
    assert b.data == b"bytes" and b.exists_in_system()
    b.write(b"new")
    assert b.data == b"new"
    cb = b.to(local)
    assert cb.system is local and cb.data == b"new" and cb.exists_in_system()
    cb.write(b"changed there")
    assert cb.data == b"changed there" and b.data == b"new"
    made = rh.blob(data="text", system=local, path=str(tmp_path / "t.txt"))
    assert (tmp_path / "t.txt").read_text() == "text"  # the local cluster shares this machine
    back = made.to("here", path=str(tmp_path / "copy.txt"))
    assert back.data == b"text" and back.system == "file"
    at = rh.blob(path=str(tmp_path / "copy.txt"))  # an existing file
    assert at.data == b"text"
    for blob in (b, cb, made, back):
        blob.rm()
        assert not blob.exists_in_system()
    with pytest.raises(rh.DataNotFoundError):
        _ = b.data
    with pytest.raises(rh.ConfigError, match="a blob holds bytes"):
        rh.blob(data=[1, 2])


def test_a_blob_passed_to_a_function_arrives_as_bytes(local):
    size = rh.function(datafns.size_of).to(local)
    here = rh.blob(data=b"x" * 1000)
    assert size(here) == ("bytes", 1000)
    assert size(here.to(local)) == ("bytes", 1000)


def _frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({
        "i32": np.arange(n, dtype="int32"),
        "f32": np.linspace(0, 1, n, dtype="float32"),
        "text": [f"row {i}" for i in range(n)],
        "cat": pd.Categorical(["a", "b"] * (n // 2)),
        "nullable": pd.array([1, None] * (n // 2), dtype="Int64"),
        "when": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
    }, index=pd.RangeIndex(10, 10 + 2 * n, 2, name="row"))


@pytest.mark.parametrize("index", ["range", "labels"])
def test_a_table_keeps_dtypes_and_index_through_parts(local, monkeypatch, index):
    df = _frame()
    if index == "labels":
        df.index = pd.Index([f"k{i}" for i in range(len(df))], name="key")
    monkeypatch.setattr(parquet, "PART_BYTES", 1024)  # a small table written in many parts
    t = rh.table(data=df, path=None, system="here")
    assert len(parquet.part_names(t.place, t.path)) >= 3
    assert isinstance(t.data, pa.Table) and t.data.num_rows == 50
    pd.testing.assert_frame_equal(t.to_pandas(), df)
    batches = list(t.stream(batch_size=7))
    assert all(isinstance(b, pa.RecordBatch) and b.num_rows <= 7 for b in batches)
    assert sum(b.num_rows for b in batches) == 50
    tc = t.to(local)
    pd.testing.assert_frame_equal(tc.to_pandas(), df)
    back = tc.to("here")
    pd.testing.assert_frame_equal(back.to_pandas(), df)


def test_writing_adds_rows_and_a_table_can_live_on_the_cluster(local, tmp_path):
    df = _frame(10)
    t = rh.table(data=df, system=local, path=str(tmp_path / "t"))
    t.write(_frame(4))
    t.write(pa.table({"i32": pa.array([7], pa.int32())}))  # fewer columns: the rest are null
    got = t.to_pandas()
    assert len(got) == 15 and list(got["i32"][:10]) == list(range(10))
    assert rh.table(path=str(tmp_path / "t"), system=local).data.num_rows == 15
    t.rm()
    assert not t.exists_in_system()
    with pytest.raises(rh.ConfigError, match="a table takes a pandas DataFrame"):
        rh.table(data=[1, 2, 3])
    with pytest.raises(rh.DataNotFoundError):
        _ = rh.table(path=str(tmp_path / "none")).data


def test_a_table_passed_to_a_function_arrives_as_a_pyarrow_table(local):
    summary = rh.function(datafns.summary).to(local)
    t = rh.table(data=pd.DataFrame({"a": [1, 2, 3], "b": list("xyz")}))
    assert summary(t) == ("Table", 3, ["a", "b"])
    assert summary(t.to(local)) == ("Table", 3, ["a", "b"])


def test_moving_a_table_does_not_load_it(local, monkeypatch):
    t = rh.table(data=_frame())
    monkeypatch.setattr(parquet, "read", lambda *a: pytest.fail("the table was loaded"))
    monkeypatch.setattr(parquet, "stream", lambda *a: pytest.fail("the table was loaded"))
    copy = t.to(local).to("here")
    assert sorted(parquet.part_names(copy.place, copy.path)) == \
        sorted(parquet.part_names(t.place, t.path))
