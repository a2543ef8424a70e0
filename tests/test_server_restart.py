"""``POST /restart``: a server run by a supervisor (a SageMaker job's node program) stops
and exits with code 75 so that the supervisor starts it again; the owner only; a server nobody
supervises refuses and says how to restart it. Real server processes over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TOKEN = "owner-token-restart-5c1"


def start(home: Path, *settings: str) -> tuple[subprocess.Popen, str]:
    record = home / "record.json"
    args = [sys.executable, "-m", "rh_server", "--host", "127.0.0.1", "--port", "0", "--name",
            "sup", "--home", str(home), "--record", str(record), "--token-stdin"]
    for s in settings:
        args += ["--setting", s]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write(f"{TOKEN}\n".encode())
    proc.stdin.close()
    deadline = time.monotonic() + 60
    while not (record.exists() and record.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{json.loads(record.read_text())['port']}"


@pytest.fixture
def servers():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:  # exactly the processes this test started
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def test_a_supervised_server_stops_with_code_75_for_its_owner(tmp_path, servers):
    proc, url = start(tmp_path, "supervised=true")
    servers.append(proc)
    other = httpx.post(f"{url}/restart", headers={"Authorization": "Bearer not-it"})
    assert other.status_code == 403 and "not valid for this cluster" in other.text
    assert proc.poll() is None
    r = httpx.post(f"{url}/restart", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 202 and r.json() == {"restarting": True, "pid": proc.pid}
    assert proc.wait(30) == 75


def test_a_server_nobody_supervises_refuses_and_says_how(tmp_path, servers):
    proc, url = start(tmp_path)
    servers.append(proc)
    r = httpx.post(f"{url}/restart", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 409
    assert "c.restart_server()" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/health").json()["pid"] == proc.pid  # still serving
    proc.terminate()
    assert proc.wait(30) == 0  # a signal's stop is not a restart
