"""Restarting and stopping a byo cluster's server, the ways users do it: restart_server() and
`rh restart NAME` (a new server process that serves the same names), teardown()/down() and
`rh down NAME` (the server and the SSH connection stopped, until the next call). Each test has
its own cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import userfns

import rh_core as rh


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ended(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(pid)


def _rh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rh_core.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("connection", ["ssh", "paramiko"])
def test_restart_server_serves_the_same_names_from_a_new_process(own_cluster, connection):
    cluster = own_cluster(f"byo-restart-{connection}", server_connection_type=connection)
    add = rh.function(userfns.add).to(cluster)
    assert add(1, 2) == 3
    before = cluster.client().health()["pid"]

    cluster.restart_server()

    after = cluster.client().health()["pid"]
    assert after != before and _ended(before)
    assert "add" in cluster.keys()  # served names come back without a new .to()
    assert add(2, 3) == 5


@pytest.mark.parametrize("connection", ["ssh", "paramiko"])
def test_teardown_stops_the_server_and_the_ssh_connection(own_cluster, connection):
    cluster = own_cluster(f"byo-teardown-{connection}", server_connection_type=connection)
    add = rh.function(userfns.add).to(cluster)
    assert add(1, 2) == 3
    server = cluster.client().health()["pid"]
    node = cluster.provider.node
    if connection == "ssh":
        master = node.master_pid()  # the OpenSSH master process on this machine
        assert master and _running(master)
    else:
        transport = node.transport()  # paramiko's connection, inside this process
        assert transport.is_active()

    cluster.teardown()

    assert _ended(server)
    if connection == "ssh":
        assert _ended(master)
    else:
        assert not transport.is_active()
    assert not cluster.is_up()
    assert add(2, 3) == 5  # the next call brings the server up again, serving the same names


def test_cli_restart_and_down(own_cluster):
    cluster = own_cluster("byo-cli-life")
    rh.function(userfns.add).to(cluster)
    first = cluster.client().health()["pid"]
    cluster.save()

    out = _rh("restart", "byo-cli-life")
    assert (out.returncode, out.stdout) == (0, "restarted the server of 'byo-cli-life'\n"), out.stderr
    status = _rh("status", "byo-cli-life")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "add" in json.loads(status.stdout)["resources"]  # served again by the new server
    second = cluster.client().health()["pid"]
    assert second != first and _ended(first)

    out = _rh("down", "byo-cli-life")
    assert (out.returncode, out.stdout) == (0, "stopped the server of 'byo-cli-life'\n"), out.stderr
    assert _ended(second)
    status = _rh("status", "byo-cli-life")
    assert (status.returncode, status.stdout) == (1, "cluster 'byo-cli-life' is not up\n")
    cluster.delete_configs()
