"""Fixtures for rh-caddy: a private rh home, and the real Caddy binary (installed by the repo's
test command with apt-get). Servers and Caddy processes are stopped by PID."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    if shutil.which("caddy") is None:
        pytest.fail("Caddy is not installed: `apt-get install caddy` (bash scripts/test does it)",
                    pytrace=False)
    home = tmp_path_factory.mktemp("rh-home")
    old = os.environ.get("RH_HOME")
    os.environ["RH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("RH_HOME", None)
    else:
        os.environ["RH_HOME"] = old


@pytest.fixture
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
