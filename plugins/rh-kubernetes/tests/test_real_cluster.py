"""A real Kubernetes cluster, when ``KUBECONFIG`` points at one as the session starts (its
current context; ``RH_K8S_TEST_NAMESPACE`` picks the namespace, ``default`` otherwise). Nothing
is stood in. Without such a cluster this test does not run, and says so as a warning in the
summary (as tests/test_docs_usage.py does for examples it cannot run); it never passes
silently. The image must have this machine's Python version."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import k8sfns

import rh_core as rh

#: KUBECONFIG as the session found it (the stand-in's fixture points it elsewhere later).
REAL_KUBECONFIG = os.environ.get("KUBECONFIG")


def test_real_cluster(monkeypatch):
    if not REAL_KUBECONFIG or not all(Path(p).is_file() for p in
                                      REAL_KUBECONFIG.split(os.pathsep) if p):
        warnings.warn("test_real_cluster is not run: KUBECONFIG does not point at a "
                      "kubeconfig file (set it to a real cluster's to run this test)",
                      stacklevel=1)
        return
    monkeypatch.setenv("KUBECONFIG", REAL_KUBECONFIG)
    image = f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"
    c = rh.kubernetes_cluster(name="rh-real-test", image=image, cpus="500m", memory="1Gi",
                              namespace=os.environ.get("RH_K8S_TEST_NAMESPACE", "default"))
    try:
        chatter = rh.function(k8sfns.chatter).to(c)
        assert chatter(2) == 2
        name, home = rh.function(k8sfns.where).to(c)()
        assert name == "rh-real-test-0" and home == "/mnt/rh"
        assert c.status()["kubernetes"]["pods"][0]["ready"] is True
    finally:
        c.down()
    assert c.provider.endpoint() is None
