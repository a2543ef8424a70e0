"""The server's /folder routes over real HTTP, as curl or another client uses them: a tar stream
with its checksum in and out, and what is refused with nothing written (a changed or cut
archive, members that escape, an existing file without overwrite, a body over the limit, an
upload cut off, a full disk), and the operations on paths."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from waiting import wait_until

import rh_core as rh
from rh_core.transport import archive
from rh_core.transport.staging import INCOMING


def _http(cluster) -> httpx.Client:
    client = cluster.client()
    return httpx.Client(base_url=client.info.base_url, timeout=60,
                        headers={"Authorization": client.http.headers["authorization"]})


def _stream(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A tar archive of ``members`` (and symlinks) followed by its SHA-256."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    body = out.getvalue()
    return body + hashlib.sha256(body).digest()


def _nothing_left(folder) -> bool:
    return not [p for p in folder.iterdir() if INCOMING in p.name]


def test_a_tar_stream_goes_in_and_comes_back(local, tmp_path):
    dest = tmp_path / "dest"
    with _http(local) as http:
        r = http.put("/folder/tar", params={"path": str(dest)},
                     content=_stream({"a.txt": b"alpha", "sub/b.txt": b"beta"}))
        assert r.status_code == 200, r.text
        assert r.json() == {"path": str(dest), "files": 2, "bytes": 9}
        assert (dest / "sub" / "b.txt").read_bytes() == b"beta"
        got = http.get("/folder/tar", params={"path": str(dest)})
    assert got.headers["content-type"] == archive.CONTENT_TYPE
    body, digest = got.content[:-32], got.content[-32:]
    assert hashlib.sha256(body).digest() == digest
    with tarfile.open(fileobj=io.BytesIO(body)) as tf:
        assert sorted(tf.getnames()) == ["a.txt", "sub", "sub/b.txt"]
        assert tf.extractfile("a.txt").read() == b"alpha"


def test_a_changed_or_cut_archive_writes_nothing(local, tmp_path):
    good = _stream({"a.txt": b"alpha" * 1000})
    changed = good[:100] + bytes([good[100] ^ 1]) + good[101:]
    with _http(local) as http:
        for body in (changed, good[:-1], good[: len(good) // 2], b"not a tar at all"):
            r = http.put("/folder/tar", params={"path": str(tmp_path / "dest")}, content=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["kind"] == "transfer"
            assert "nothing was written" in r.json()["error"]["message"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("members,links,why", [
    ({"../escaped.txt": b"x"}, {}, "outside the destination"),
    ({"/etc/rh-evil": b"x"}, {}, "an absolute name"),
    ({"ok.txt": b"x"}, {"link": "/etc/passwd"}, "a link to /etc/passwd, outside"),
    ({"ok.txt": b"x"}, {"link": "../../outside"}, "a link to ../../outside, outside"),
])
def test_members_that_escape_the_folder_are_refused(local, tmp_path, members, links, why):
    with _http(local) as http:
        r = http.put("/folder/tar", params={"path": str(tmp_path / "box" / "dest")},
                     content=_stream(members, links))
    assert r.status_code == 400 and r.json()["error"]["kind"] == "unsafe_path"
    assert why in r.json()["error"]["message"]
    assert list((tmp_path / "box").iterdir()) == []  # not even the files before the bad one


def test_files_already_there_need_overwrite(local, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_text("old")
    with _http(local) as http:
        r = http.put("/folder/tar", params={"path": str(dest)},
                     content=_stream({"a.txt": b"new", "b.txt": b"b"}))
        assert r.status_code == 409 and r.json()["error"]["kind"] == "exists"
        assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
        r = http.put("/folder/tar", params={"path": str(dest), "overwrite": "1"},
                     content=_stream({"a.txt": b"new", "b.txt": b"b"}))
        assert r.status_code == 200
    assert (dest / "a.txt").read_text() == "new" and (dest / "b.txt").read_text() == "b"


def test_an_upload_cut_off_leaves_no_file(local, tmp_path):
    """The client goes away in the middle of a large file: the server drops what it got."""
    body = _stream({"big.bin": bytes(8 << 20)})
    url = urlsplit(local.client().info.base_url)
    auth = local.client().http.headers["authorization"]
    with socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(f"PUT /folder/tar?path={tmp_path}/dest HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        s.sendall(body[: 3 << 20])
    wait_until(lambda: _nothing_left(tmp_path), 10, "the staging folder to be removed")
    assert list(tmp_path.iterdir()) == []


def test_a_body_over_the_limit_is_refused(own_cluster, tmp_path):
    small = rh.cluster(name=own_cluster.short_name, provider="local", max_body_mb=1)
    body = _stream({"big.bin": bytes(2 << 20)})
    with _http(small) as http:
        known = http.put("/folder/tar", params={"path": str(tmp_path / "a")}, content=body)
        streamed = http.put("/folder/tar", params={"path": str(tmp_path / "b")},
                            content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]))
    for r in (known, streamed):
        assert r.status_code == 413 and r.json()["error"]["kind"] == "too_large"
        assert "limit of 1 MiB" in r.json()["error"]["message"]
    wait_until(lambda: _nothing_left(tmp_path), 10, "the staging folder to be removed")
    assert list(tmp_path.iterdir()) == []
    small.down()


def test_operations_on_paths(local, rh_home, tmp_path):
    with _http(local) as http:
        def op(operation, **spec):
            return http.post(f"/folder/{operation}", json=spec)

        assert op("mkdir", path=str(tmp_path / "d" / "e")).json() == {"path": str(tmp_path / "d/e")}
        http.put("/folder/tar", params={"path": str(tmp_path / "d")},
                 content=_stream({"f.txt": b"12345"}))
        assert op("ls", path=str(tmp_path / "d")).json()["entries"] == [
            {"name": "e", "kind": "dir", "size": 0}, {"name": "f.txt", "kind": "file", "size": 5}]
        info = op("resolve", path=str(tmp_path / "d"), walk=True).json()
        assert (info["kind"], info["files"], info["bytes"]) == ("dir", 1, 5)
        assert op("resolve", name="x").json()["path"] == str(rh_home / "data" / "x")
        assert op("copy", path=str(tmp_path / "d"), dest=str(tmp_path / "c")).json()["files"] == 1
        assert op("mv", path=str(tmp_path / "c"), dest=str(tmp_path / "m")).status_code == 200
        r = op("mv", path=str(tmp_path / "d"), dest=str(tmp_path / "m"))
        assert r.status_code == 409 and r.json()["error"]["kind"] == "exists"
        assert op("rm", path=str(tmp_path / "m"), names=["f.txt"]).json() == {
            "removed": [str(tmp_path / "m" / "f.txt")]}
        for keep in ("/", "~", str(Path.home().parent), str(rh_home), str(rh_home.parent)):
            r = op("rm", path=keep)
            assert r.status_code == 400 and r.json()["error"]["kind"] == "unsafe_path", keep
        r = http.get("/folder/tar", params={"path": str(tmp_path / "nope")})
        assert r.status_code == 404 and r.json()["error"]["kind"] == "path_not_found"
        assert op("explode", path="x").status_code == 404
        assert http.post("/folder/ls", content=b"[1, 2]").status_code == 400
        assert op("ls", path="bad\0path").status_code == 400


def test_a_full_disk_answers_507_and_writes_nothing(local, small_disk):
    with _http(local) as http:
        r = http.put("/folder/tar", params={"path": str(small_disk / "dest")},
                     content=_stream({"fits.txt": b"x", "big.bin": bytes(3 << 20)}))
    assert r.status_code == 507 and r.json()["error"]["kind"] == "disk_full"
    assert f"the disk holding {small_disk}/dest is full" in r.json()["error"]["message"]
    assert list(small_disk.iterdir()) == []
