"""Fixtures for rh-caddy: a private rh home, and the real Caddy binary (installed by the repo's
test command with apt-get). Servers and Caddy processes are stopped by PID."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest

from rh_core.testing import private_home

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    if shutil.which("caddy") is None:
        pytest.fail("Caddy is not installed: `apt-get install caddy` (bash scripts/test does it)",
                    pytrace=False)
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
