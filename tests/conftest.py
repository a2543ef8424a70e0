"""Fixtures: a private rh home for the whole session and one real local cluster shared by tests.

Every server a fixture starts is stopped by the PID it recorded (``cluster.down()``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "userpkg"))


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("rh-home")
    old = os.environ.get("RH_HOME")
    os.environ["RH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("RH_HOME", None)
    else:
        os.environ["RH_HOME"] = old


@pytest.fixture(scope="session")
def local(rh_home):
    """The local cluster, started once for the session and stopped by PID at its end."""
    import rh_core as rh

    cluster = rh.cluster("local").up_if_not()
    yield cluster
    cluster.down()


@pytest.fixture
def own_cluster(rh_home, request):
    """A separate local cluster for tests that restart, crash or stop its server."""
    import rh_core as rh

    name = "t-" + request.node.name.replace("[", "-").replace("]", "")[:40]
    cluster = rh.cluster(name=name, provider="local")
    yield cluster
    cluster.down()


def server_url(cluster) -> str:
    return cluster.client().info.base_url
