"""Fixtures: a private rh home for the whole session and one real local cluster shared by tests.

Every server a fixture starts is stopped by the PID it recorded (``cluster.down()``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rh_core.testing import private_home

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "userpkg"))


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


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
