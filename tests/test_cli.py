"""The ``rh`` command, run as users run it (the console script next to this Python), on a saved
local cluster of its own: what each command prints and what it does to the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core.builtin.local import process_alive

RH = Path(sys.executable).with_name("rh")


def rh_cli(*args: str) -> subprocess.CompletedProcess:
    if not RH.exists():
        pytest.fail(f"the rh command is not installed next to {sys.executable}: pip install -e .",
                    pytrace=False)
    return subprocess.run([str(RH), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def saved(rh_home):
    """A saved local cluster the commands find by name; stopped by its recorded PID at the end."""
    cluster = rh.cluster(name="cli-life", provider="local").save()
    yield cluster
    cluster.down()
    cluster.delete_configs()


def _record(rh_home, name) -> dict:
    return json.loads((rh_home / "clusters" / name / "server.json").read_text())


def test_up_restart_logs_down(saved, rh_home):
    name = saved.short_name
    assert not saved.is_up()

    out = rh_cli("up", name)
    assert out.returncode == 0, out.stderr
    first = _record(rh_home, name)
    url = f"http://127.0.0.1:{first['port']}"
    assert out.stdout == f"cluster {name!r} is up at {url}\n"
    assert httpx.get(f"{url}/health").json()["pid"] == first["pid"]
    assert rh_cli("up", name).stdout == out.stdout  # already up: the same server, nothing new
    assert _record(rh_home, name)["pid"] == first["pid"]

    rh.function(userfns.add).to(saved)
    out = rh_cli("restart", name)
    assert (out.returncode, out.stdout) == (0, f"restarted the server of {name!r}\n"), out.stderr
    second = _record(rh_home, name)
    assert second["pid"] != first["pid"] and not process_alive(first["pid"])
    url = f"http://127.0.0.1:{second['port']}"
    assert httpx.get(f"{url}/health").json()["pid"] == second["pid"]
    assert httpx.get(f"{url}/add/call", params={"a": 1, "b": 2}).json() == 3  # served again

    out = rh_cli("logs", name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(f"for cluster {name} listening on 127.0.0.1") == 2  # both servers
    assert "rh server stopped" in out.stdout

    out = rh_cli("down", name)
    assert (out.returncode, out.stdout) == (0, f"stopped the server of {name!r}\n"), out.stderr
    assert not process_alive(second["pid"])
    assert not (rh_home / "clusters" / name / "server.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")

    out = rh_cli("status", name)
    assert (out.returncode, out.stdout) == (1, f"cluster {name!r} is not up\n")


@pytest.mark.parametrize("command", ["up", "restart", "down", "logs"])
def test_an_unknown_cluster_is_one_clear_error(command):
    out = rh_cli(command, "ghost")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: unknown cluster 'ghost': no cluster is saved under that "
                                 "name")
    assert "Traceback" not in out.stderr
