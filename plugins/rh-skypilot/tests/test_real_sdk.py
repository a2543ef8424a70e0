"""rh's calls against SkyPilot's real SDK and its real local API server, offline (slow: the API
server takes about 30 s to start on two cores).

Boundary: none in SkyPilot: ``sky.status``, ``sky.launch``, ``sky.get``, ``sky.stream_and_get``
are SkyPilot's own, talking to the API server the SDK starts on first use (on a port of the
test's, with a HOME of the test's). No cloud has credentials here, so a launch stops where
SkyPilot finds no enabled cloud: what a user without `sky check` passing sees. The test stops
the API server it caused to start, by its process group (SkyPilot starts it in a session of its
own), and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from rh_byo.ssh import free_port

SCRIPT = textwrap.dedent("""
    import json
    import rh_core as rh
    from rh_skypilot.errors import NoCloudError
    from rh_skypilot.provider import OnDemandProvider

    out = {}
    c = rh.ondemand_cluster(name="sky-real", instance_type="CPU:2", provider="aws")
    out["status"] = c.status(refresh=True)["skypilot"]
    try:
        c.up()
    except NoCloudError as e:
        out["up"] = str(e)
    c.down()  # nothing to tear down: no error
    out["list"] = OnDemandProvider.list_status(["sky-real"])
    print("RESULT" + json.dumps(out))
""")


def _api_servers(port: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "sky.server.server" in cmd and f"--port={port}" in cmd:
            found.append(p)
    return found


def _stop_group(leader: psutil.Process) -> None:
    """SIGTERM to the API server's process group, then SIGKILL to what is left of it (its
    multiprocessing resource tracker ignores SIGTERM)."""
    pgid = os.getpgid(leader.pid)
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        members = [p for p in psutil.process_iter() if _pgid(p) == pgid]
        if not members or all(p.status() == psutil.STATUS_ZOMBIE for p in members):
            return
        if not leader.is_running():
            break
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, psutil.Error):
        return None


@pytest.fixture
def api_port(tmp_path):
    port = free_port()
    yield port
    for server in _api_servers(port):
        _stop_group(server)
    assert not _api_servers(port)


def test_status_launch_down_through_the_real_sdk(api_port, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RH_SKYPILOT_SDK"}
    env.update({"HOME": str(home), "RH_HOME": str(tmp_path / "rh"), "RH_QUIET": "1",
                "SKYPILOT_API_SERVER_LOCAL_PORT": str(api_port)})
    for k in [k for k in env if k.startswith("AWS_")]:
        del env[k]
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    out = json.loads(lines[0][len("RESULT"):])
    assert out["status"]["status"] is None
    assert "SkyPilot has no cluster named 'sky-real'" in out["status"]["message"]
    assert "no cloud is enabled for SkyPilot on this machine" in out["up"]
    assert "Run `sky check`" in out["up"]
    assert out["list"] == {}
    assert _api_servers(api_port)  # the SDK started it; the fixture stops it
