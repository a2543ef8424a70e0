"""``rh up``, ``rh status``, ``rh down`` and ``rh clusters`` for on-demand clusters, run as
the ``rh`` command in a subprocess.

Boundary: the SkyPilot SDK functions (``tests/sky_standin.py``, named by RH_SKYPILOT_SDK in
the subprocess's environment; its state file is shared with the test). Bring-up over SSH to
the loopback sshd, the server and the CLI run for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rh_byo.ssh import free_port

import rh_core as rh

HERE = Path(__file__).resolve().parent


def rh_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")]), "RH_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "rh_core.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_up_status_clusters_down(standin):
    rh.ondemand_cluster(name="sky-cli", instance_type="A10G:1", provider="aws",
                        server_port=free_port()).save()
    rh.cluster(name="box", ips=["10.0.0.9"], ssh_creds={"ssh_user": "u"}).save()

    standin.configure(fail={"status": ["ApiServerConnectionError", "Could not connect to "
                                       "SkyPilot API server at http://127.0.0.1:46580."]})
    out = rh_cli("clusters")  # SkyPilot unreachable: the clusters are still listed
    assert out.returncode == 0, out.stderr
    assert "warning: no status from provider 'ondemand'" in out.stderr
    assert "Could not connect to SkyPilot API server" in out.stderr
    assert "~/sky-cli" in out.stdout and "~/box" in out.stdout
    standin.configure()

    out = rh_cli("status", "sky-cli")
    assert out.returncode == 1
    assert "cluster 'sky-cli' is not up (its provider reports: no such cluster)" in out.stdout

    out = rh_cli("up", "sky-cli")
    assert out.returncode == 0, out.stderr
    assert "cluster 'sky-cli' is up at http://127.0.0.1:" in out.stdout
    assert standin.calls("launch")[0][1]["cluster_name"] == "sky-cli"

    out = rh_cli("status", "sky-cli")
    assert out.returncode == 0, out.stderr
    assert '"status": "UP"' in out.stdout and '"cluster": "sky-cli"' in out.stdout

    out = rh_cli("clusters")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[1]: line for line in out.stdout.splitlines()
             if line.startswith("│") and len(line.split()) > 2}
    assert "ondemand" in lines["~/sky-cli"] and "A10G:1 on aws" in lines["~/sky-cli"]
    assert lines["~/sky-cli"].rstrip(" │").endswith("UP")
    assert "byo" in lines["~/box"] and "10.0.0.9" in lines["~/box"]

    out = rh_cli("down", "sky-cli")
    assert out.returncode == 0, out.stderr
    assert standin.calls("down")[-1][1] == {"cluster_name": "sky-cli"}
    out = rh_cli("clusters")
    assert "not launched" in [line for line in out.stdout.splitlines() if "sky-cli" in line][0]
    out = rh_cli("down", "sky-cli")  # again: nothing to tear down, no error
    assert out.returncode == 0, out.stderr
