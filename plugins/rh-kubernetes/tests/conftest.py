"""Fixtures for rh-kubernetes: a private rh home, and the Kubernetes stand-in (no API server can
run on these machines) started once per session.

The stand-in (``tests/standin/``) is a Starlette app on Hypercorn, over HTTPS on 127.0.0.1,
serving the part of the Kubernetes API rh uses; the real ``kubernetes`` client reaches it
through a kubeconfig the stand-in writes (``KUBECONFIG`` points at it for the session). Its
pods run for real on this machine, each in its own network and mount namespaces, so it needs
root and the programs ``ip`` (iproute2), ``unshare`` and ``mount`` (util-linux, mount); a test
whose fixture lacks one fails, naming what to install. The fixture stops exactly the stand-in
process it started, by PID; the stand-in stops its pods' processes before it exits.

A test that cannot run here (the real-cluster one without a cluster) says so as a warning in the
summary, as ``tests/test_docs_usage.py`` does for the examples it cannot run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rh_core.testing import private_home

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
sys.path.insert(0, str(HERE))
#: What the stand-in's pods need on this machine, and the Debian package of each.
TOOLS = {"ip": "iproute2", "unshare": "util-linux", "mount": "mount"}


def lacking() -> str | None:
    """What keeps the stand-in from running here, said so that it can be fixed."""
    if os.geteuid() != 0:
        return "root (the stand-in's pods get network and mount namespaces): run as root"
    gone = [t for t in TOOLS if shutil.which(t) is None]
    if gone:
        return (f"{', '.join(gone)}: install with `apt-get install -y "
                f"{' '.join(sorted({TOOLS[t] for t in gone}))}`")
    return None


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    """The stand-in API server: ``{"dir", "kubeconfig", "url", "pid"}``. ``KUBECONFIG`` points
    at its kubeconfig for the session."""
    missing = lacking()
    if missing:
        pytest.fail(f"the kubernetes tests need {missing} (bash scripts/test installs the "
                    f"packages when run as root)", pytrace=False)
    folder = tmp_path_factory.mktemp("standin")
    log = open(folder / "standin.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "standin.main", "--dir", str(folder)],
                            cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)},
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 30
    while not (folder / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the stand-in did not start:\n{(folder / 'standin.log').read_text()}",
                        pytrace=False)
        time.sleep(0.05)
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(folder / "kubeconfig")
    yield {"dir": folder, "kubeconfig": folder / "kubeconfig", "pid": proc.pid,
           "url": f"https://127.0.0.1:{(folder / 'ready').read_text()}"}
    if saved is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = saved
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def k8s(standin):
    """The cluster ``k8s-test`` on the stand-in, brought up by the first test that calls it and
    down (every object rh made deleted) at the end of the session."""
    import rh_core as rh

    cluster = rh.kubernetes_cluster(name="k8s-test", cpus="1", memory="2Gi")
    yield cluster
    cluster.down()


@pytest.fixture
def control(standin):
    """The stand-in's test controls: ``control(pod, "evict" | "oomkill", namespace=...)``."""
    import ssl

    import httpx

    trust = ssl.create_default_context(cafile=str(standin["dir"] / "tls" / "cert.pem"))

    def send(pod: str, what: str, namespace: str = "default", **body) -> None:
        r = httpx.post(f"{standin['url']}/standin/namespaces/{namespace}/pods/{pod}/{what}",
                       json=body, headers={"Authorization": "Bearer standin-admin-token"},
                       verify=trust)
        r.raise_for_status()

    return send


@pytest.fixture
def api(standin):
    """The real client on the stand-in as its admin, to look at what rh made: ``(CoreV1Api,
    AppsV1Api, RbacAuthorizationV1Api)``."""
    from kubernetes import client, config

    base = config.new_client_from_config(config_file=str(standin["kubeconfig"]))
    return client.CoreV1Api(base), client.AppsV1Api(base), client.RbacAuthorizationV1Api(base)


@pytest.fixture
def own(standin):
    """Clusters of the test's own on the stand-in; each brought down (its objects deleted) at
    the end of the test."""
    import rh_core as rh  # after rh_home has set RH_HOME, as in k8s above

    made = []

    def make(name: str, **fields):
        cluster = rh.kubernetes_cluster(name=name, **{"cpus": "1", "memory": "1Gi", **fields})
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        try:
            cluster.down()
        except rh.RhError:
            pass  # a namespace that does not exist, a user who may not: nothing was made
