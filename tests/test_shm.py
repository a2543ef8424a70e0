"""Shared-memory buffers are written again into the pages of files whose receivers are done
with them, and never while anyone can still see them (real /dev/shm files, real processes)."""

from __future__ import annotations

import gc
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import userfns

import rh_core as rh
from rh_core.transport import shm

MiB = 1 << 20


@pytest.fixture
def folder():
    path = shm.ROOT / f"rh-test-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    yield str(path)
    shm.clear(path, remove=True)


def names(folder: str) -> list[str]:
    return sorted(p.name[:2] for p in Path(folder).iterdir())


def test_a_file_is_written_again_once_its_receiver_let_go_of_it(folder):
    name = shm.write(folder, memoryview(bytes([1]) * (2 * MiB)))
    inode = os.stat(os.path.join(folder, name)).st_ino
    got = shm.take(folder, name, 2 * MiB)
    assert names(folder) == ["h-"]  # held while mapped
    assert bytes(got[:3]) == b"\x01\x01\x01"
    del got
    gc.collect()
    assert names(folder) == ["f-"]  # free again
    again = shm.write(folder, memoryview(bytes([2]) * (2 * MiB)))
    assert os.stat(os.path.join(folder, again)).st_ino == inode  # the same pages
    assert names(folder) == ["b-"]
    assert bytes(shm.take(folder, again, 2 * MiB)[-3:]) == b"\x02\x02\x02"


def test_a_free_file_far_from_the_size_is_not_used_and_the_keep_limit_holds(folder, monkeypatch):
    got = shm.take(folder, shm.write(folder, memoryview(bytes(MiB))), MiB)
    del got
    gc.collect()
    small = next(Path(folder).glob("f-*"))
    big = shm.write(folder, memoryview(bytes(4 * MiB)))
    assert small.exists() and os.path.getsize(os.path.join(folder, big)) == 4 * MiB
    monkeypatch.setenv("RH_SHM_KEEP_MB", "4")  # room for the 4 MiB file, not both
    got = shm.take(folder, big, 4 * MiB)
    del got
    gc.collect()
    assert names(folder) == ["f-"] and small.exists()  # the 4 MiB file would pass the limit
    monkeypatch.setenv("RH_SHM_KEEP_MB", "0")  # nothing kept: taken files lose their names
    shm.take(folder, shm.write(folder, memoryview(bytes(2 * MiB))), 2 * MiB)
    assert names(folder) == ["f-"]
    monkeypatch.setenv("RH_SHM_KEEP_MB", "lots")
    name = shm.write(folder, memoryview(bytes(2 * MiB)))
    with pytest.raises(rh.ConfigError, match="RH_SHM_KEEP_MB must be a whole number of MiB"):
        shm.take(folder, name, 2 * MiB)
    assert names(folder) == ["f-"]  # the buffer that could not be taken is gone


def test_a_forked_child_keeps_seeing_what_it_inherited(folder):
    got = shm.take(folder, shm.write(folder, memoryview(bytes([7]) * (2 * MiB))), 2 * MiB)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait until the parent wrote over any pages it could reuse
        try:
            os.close(w)
            os.read(r, 1)
            os._exit(0 if bytes(got[:1]) == b"\x07" and bytes(got[-1:]) == b"\x07" else 1)
        finally:
            os._exit(2)
    os.close(r)
    try:
        del got
        gc.collect()
        assert names(folder) == []  # not freed: the child still maps it
        shm.write(folder, memoryview(bytes([9]) * (2 * MiB)))
    finally:
        os.close(w)  # the child reads on (EOF) whatever happened here
        status = os.waitpid(pid, 0)[1]
    assert os.waitstatus_to_exitcode(status) == 0  # it saw its bytes, not the new ones


def test_a_buffer_that_cannot_be_taken_says_why_and_leaves_nothing(folder):
    name = shm.write(folder, memoryview(bytes(2 * MiB)))
    with pytest.raises(ValueError, match=f"shared buffer {name} has the wrong size"):
        shm.take(folder, name, MiB)
    empty = Path(folder) / "b-empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError):  # mmap refuses an empty file
        shm.take(folder, empty.name, 0)
    assert names(folder) == []


def test_files_held_by_a_process_that_ended_are_removed_by_the_next_writer(folder):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    left = Path(folder) / f"h-{ended}-{secrets.token_hex(12)}"
    left.write_bytes(bytes(MiB))
    mine = Path(folder) / f"h-{os.getpid()}-{secrets.token_hex(12)}"
    mine.write_bytes(bytes(MiB))
    shm.write(folder, memoryview(bytes(MiB)))
    assert not left.exists() and mine.exists()


def test_arrays_kept_from_earlier_calls_stay_as_they_came_back(local):
    """Through the local cluster: every result is kept while later calls reuse freed files."""
    f = rh.function(userfns.echo).to(local)
    kept = [f(np.full(MiB, i, dtype=np.uint8)) for i in range(4)]
    for _ in range(3):  # results dropped at once: their files are written again
        for i in range(4, 8):
            assert int(f(np.full(MiB, i, dtype=np.uint8)).max()) == i
    assert [(int(a.min()), int(a.max())) for a in kept] == [(i, i) for i in range(4)]
    folder = Path(local.client().info.shm_dir)
    assert list(folder.glob("b-*")) == []
    assert sum(p.stat().st_size for p in folder.glob("f-*")) <= shm.keep_bytes()
