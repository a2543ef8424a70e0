"""Autostop: rh's server decides when the cluster is idle, SkyPilot stops it.

Boundary: the SkyPilot SDK functions (``tests/sky_standin.py``) for launch, status, autostop
and down; the stand-in starts the task's ``run`` (rh's watcher) on the node over SSH as
SkyPilot's job. SkyPilot's skylet, which stops a cluster whose job queue has been empty for
its idle minutes, is not run: the tests stop at "the job ended and SkyPilot's autostop is set".
The watcher script, the rh server's idle rule (``--autostop-mins``) and the calls run for real
on the loopback sshd.
"""

from __future__ import annotations

import os
import shlex
import time

import pytest
import userfns
from conftest import wait_for
from rh_byo.ssh import SSHNode, free_port
from rh_skypilot import autostop

import rh_core as rh


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def node(sshd):
    n = SSHNode(sshd.host, sshd.creds)
    yield n
    n.close()


def test_watcher_follows_the_server_then_ends(node, tmp_path):
    """The watcher lives while the recorded server's process does, waits ``grace`` seconds
    for a new one (a restart), then ends: SkyPilot's job queue empties."""
    d = "~/.rh/clusters/watch-test"
    node.run(f"rm -rf {d}; mkdir -p {d}")
    script = autostop.watcher_script(d, first_wait=30, grace=2, period=1)
    watcher = int(node.run(f"setsid nohup bash -c {shlex.quote(script)} "
                           f"> /dev/null 2>&1 < /dev/null & echo $!").stdout.split()[-1])
    try:
        assert _alive(watcher)
        wait_for(lambda: node.run(autostop.watcher_running_command(d)).stdout.strip() == "yes",
                 10)
        # A "server": a process whose PID is in the record, as rh_server writes it.
        server = int(node.run("setsid nohup sleep 4 > /dev/null 2>&1 < /dev/null & echo $!")
                     .stdout.split()[-1])
        node.run(f"echo '{{\"pid\": {server}, \"port\": 1}}' > {d}/server.json")
        wait_for(lambda: not _alive(server), 10)
        assert _alive(watcher)  # within the grace period a new server may come
        wait_for(lambda: not _alive(watcher), 10)
        assert node.run(autostop.watcher_running_command(d)).stdout.strip() == "no"
    finally:
        if _alive(watcher):
            os.kill(watcher, 15)


def test_watcher_ends_after_a_server_it_never_saw_running(node):
    """A server that starts and stops by itself between two of the watcher's looks removes its
    record; its output file, written when it started, tells the watcher one ran, so the
    watcher ends after ``grace`` and not after ``first_wait``."""
    d = "~/.rh/clusters/watch-brief"
    node.run(f"rm -rf {d}; mkdir -p {d}")
    script = autostop.watcher_script(d, first_wait=600, grace=1, period=3)
    watcher = int(node.run(f"setsid nohup bash -c {shlex.quote(script)} "
                           f"> /dev/null 2>&1 < /dev/null & echo $!").stdout.split()[-1])
    try:
        wait_for(lambda: node.run(autostop.watcher_running_command(d)).stdout.strip() == "yes",
                 10)
        time.sleep(0.05)  # the output file is newer than the watcher's PID file
        node.run(f"echo started > {d}/server.out")  # what rh-byo's start writes; no record left
        wait_for(lambda: not _alive(watcher), 15)
    finally:
        if _alive(watcher):
            os.kill(watcher, 15)


def test_watcher_gives_up_when_no_server_starts(node):
    d = "~/.rh/clusters/watch-none"
    node.run(f"rm -rf {d}")
    script = autostop.watcher_script(d, first_wait=2, grace=30, period=1)
    out = node.run(script, timeout=30)
    assert "no rh server on this node" in out.stdout


def test_idle_server_stops_and_the_next_call_starts_a_new_watcher(standin, monkeypatch, capfd):
    """autostop_mins: the server runs with --autostop-mins, SkyPilot's autostop is set to
    its minute; once the server stops for idleness the watcher (SkyPilot's job) ends; the
    next use submits a new watcher job (``fast`` launch) and starts a server again."""
    monkeypatch.setattr(autostop, "GRACE_S", 2)
    c = rh.ondemand_cluster(name="sky-idle", instance_type="CPU:2", autostop_mins=0.05,
                            server_port=free_port())
    try:
        f = rh.function(userfns.add).to(c)
        assert f(1, 2) == 3
        (launch,) = standin.calls("launch")
        assert launch[1]["idle_minutes_to_autostop"] == autostop.SKY_IDLE_MINUTES
        pid = c.client().health()["pid"]
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert cmdline[cmdline.index(b"--autostop-mins") + 1] == b"0.05"
        job = standin.load()["clusters"]["sky-idle"]["job_pid"]
        wait_for(lambda: not _alive(pid), 30)  # 3 s without a call: the server stops
        wait_for(lambda: not _alive(job), 20)  # and the job with it: SkyPilot's cue
        assert standin.load()["clusters"]["sky-idle"]["autostop"] == 1

        capfd.readouterr()
        assert rh.function(userfns.add).to(c)(2, 3) == 5
        assert "submitting rh's watcher job through SkyPilot" in capfd.readouterr().err
        assert standin.calls("launch")[-1][1]["fast"] is True
        assert _alive(standin.load()["clusters"]["sky-idle"]["job_pid"])
    finally:
        c.down()


def test_keep_warm_sets_skypilots_autostop(standin):
    c = rh.ondemand_cluster(name="sky-warm", instance_type="CPU:2", autostop_mins=30,
                            server_port=free_port())
    try:
        c.up()
        assert standin.load()["clusters"]["sky-warm"]["autostop"] == 1
        c.keep_warm(-1)
        assert standin.calls("autostop")[-1][1] == {"cluster_name": "sky-warm",
                                                     "idle_minutes": -1, "down": False}
        assert c.autostop_mins == -1
        c.keep_warm(60)
        assert standin.calls("autostop")[-1][1]["idle_minutes"] == 1
    finally:
        c.down()
