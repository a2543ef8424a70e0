"""Folders, blobs and tables in S3, through moto's server standing in for it (started here on
loopback, stopped by its PID), reached by s3fs and boto3 through its endpoint URL as they would
reach AWS: copies both ways, data read on the cluster itself, and the errors for missing
credentials, a missing bucket and a filesystem whose package is not installed.

What moto does not stand in for: real AWS latency and throughput, IAM policies (any key is
accepted, none is checked), multipart uploads over 5 GB.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import datafns
import pandas as pd
import pytest
from waiting import wait_until

import rh_core as rh

BUCKET = "rh-test-bucket"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1; this process's AWS settings point at it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(port) or proc.poll() is not None, 30, "moto to listen")
        assert proc.poll() is None, log.read_text()
        env = {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_goes_to_s3_and_back(s3, tmp_path):
    src = _tree(tmp_path / "data")
    up = rh.folder(path=str(src)).to("s3", path=f"s3://{BUCKET}/data")
    assert up.system == "s3" and up.path == f"s3://{BUCKET}/data"
    assert up.ls(full_paths=False, sort=True) == ["a.txt", "sub"]
    assert up.ls(sort=True)[0] == f"s3://{BUCKET}/data/a.txt"
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key="data/a.txt")["Body"].read() == b"alpha"
    same = rh.folder(path=f"s3://{BUCKET}/data")  # the system comes from the URL
    assert same.system == "s3" and same.get("a.txt") == b"alpha"
    back = same.to("here", path=str(tmp_path / "back"))
    assert _files(tmp_path / "back") == _files(src)
    same.put({"c.txt": b"c"})
    with pytest.raises(rh.DataExistsError):
        same.put({"c.txt": b"again"})
    copy = same.to("s3", path=f"s3://{BUCKET}/copy")  # within the bucket
    assert sorted(copy.ls(full_paths=False)) == ["a.txt", "c.txt", "sub"]
    copy.rm()
    assert not copy.exists_in_system()
    assert back.exists_in_system()


def test_blobs_and_tables_in_s3(s3, local, tmp_path):
    b = rh.blob(data=b"in the bucket", system="s3", path=f"s3://{BUCKET}/blobs/b.bin")
    assert b.data == b"in the bucket" and b.exists_in_system()
    on_cluster = b.to(local)
    assert on_cluster.data == b"in the bucket"
    df = pd.DataFrame({"x": range(1000), "y": [str(i) for i in range(1000)]})
    t = rh.table(data=df).to("s3", path=f"s3://{BUCKET}/tables/t")
    pd.testing.assert_frame_equal(t.to_pandas(), df)
    assert sum(batch.num_rows for batch in t.stream(batch_size=300)) == 1000
    t.write(df.iloc[:10])
    assert t.data.num_rows == 1010
    b.rm()
    assert not b.exists_in_system()


def test_data_in_s3_is_read_by_the_cluster_itself(s3, local, tmp_path):
    """The function's env has the credentials; the bytes go from S3 to the cluster."""
    env = rh.env(name="s3reader", env_vars=s3)
    up = rh.folder(path=str(_tree(tmp_path / "src"))).to("s3", path=f"s3://{BUCKET}/shared")
    path, names = rh.function(datafns.listing).to(local, env=env)(up)
    assert names == ["a.txt", "sub/b.bin"] and "/data/cache/" in path
    t = rh.table(data=pd.DataFrame({"a": [1, 2]})).to("s3", path=f"s3://{BUCKET}/tables/small")
    assert rh.function(datafns.summary).to(local, env=env)(t) == ("Table", 2, ["a"])
    b = rh.blob(data=b"12345", system="s3", path=f"s3://{BUCKET}/five")
    assert rh.function(datafns.size_of).to(local, env=env)(b) == ("bytes", 5)


def test_no_credentials_names_what_was_looked_at(s3, tmp_path, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance to ask here
    with pytest.raises(rh.StorageCredentialsError, match=r"no credentials for s3://rh-test-bucket/"
                       r"data: looked at the environment variables AWS_ACCESS_KEY_ID, "
                       r"AWS_SECRET_ACCESS_KEY .*profile 'default' \(AWS_PROFILE\)"):
        rh.folder(path=f"s3://{BUCKET}/data").ls()


def test_a_missing_bucket_says_so(s3, tmp_path):
    with pytest.raises(rh.DataNotFoundError, match="the bucket 'no-such-bucket' does not exist"):
        rh.folder(path="s3://no-such-bucket/data").ls()
    with pytest.raises(rh.DataNotFoundError, match="the bucket 'no-such-bucket' does not exist"):
        rh.folder(path=str(_tree(tmp_path / "d"))).to("s3", path="s3://no-such-bucket/d")


def test_a_filesystem_whose_package_is_missing_names_it():
    """gcsfs (Google Cloud Storage) is not among the test packages; if it is installed here,
    another filesystem whose package is missing stands in."""
    protocol, package = next((p, m) for p, m in [("gs", "gcsfs"), ("az", "adlfs"), ("oss", "ossfs"),
                                                 ("dropbox", "dropboxdrivefs")]
                             if importlib.util.find_spec(m) is None)
    with pytest.raises(rh.MissingDependencyError, match=rf"the '{protocol}' filesystem needs the "
                                                        rf"package {package}, which is not "
                                                        rf"installed: pip install {package}"):
        rh.folder(path=f"{protocol}://bucket/data").ls()
    with pytest.raises(rh.ConfigError, match=r"give the path in s3 to copy to"):
        rh.folder(path=".").to("s3")
