"""A cluster on the Kubernetes stand-in (no API server can run here): the real ``kubernetes``
client reaches the stand-in through a generated kubeconfig; the pod's agent and the rh server
run for real in the pod's sandbox, reached through the portforward websocket. Stood in: the API
server, the StatefulSet controller, the scheduler and the kubelet (see ``standin/``)."""

from __future__ import annotations

import json
import subprocess
import sys

import k8sfns
import numpy as np
import userfns
from rh_kubernetes.cluster import KubernetesCluster

import rh_core as rh


def test_bring_up_and_call(k8s, capfd):
    """The first .to() creates the objects, waits for the pod (showing its phase and events),
    installs rh's wheels in it and waits for the readiness probe."""
    f = rh.function(userfns.concat).to(k8s)
    assert f("run", "house") == "runhouse"
    shown = capfd.readouterr().err
    for step in ("applying StatefulSet k8s-test in namespace default (context standin), created",
                 "pod k8s-test-0: Scheduled: Successfully assigned default/k8s-test-0",
                 "pod k8s-test-0: Running, not ready yet", "building the wheelhouse",
                 "installing rh in pod k8s-test-0", "waiting for the server's readiness probe",
                 "syncing userpkg into 1 pod(s)"):
        assert step in shown, shown
    name, home = rh.function(k8sfns.where).to(k8s)()
    assert (name, home) == ("k8s-test-0", "/mnt/rh")  # it runs in the pod, on its volume


def test_stream_logs_and_a_large_numpy_array(k8s, capfd):
    """Logs stream back while the call runs; a 32 MiB array goes both ways through the
    port-forward stream."""
    chatter = rh.function(k8sfns.chatter).to(k8s)
    assert chatter(3, stream_logs=True) == 3
    assert "pod line 0\npod line 1\npod line 2\n" in capfd.readouterr().out
    array = np.arange(4 * 2**20, dtype=np.float64)  # 32 MiB
    doubled = rh.function(k8sfns.double).to(k8s)(array)
    assert doubled.shape == array.shape and np.array_equal(doubled, array * 2)


def test_status_and_logs(k8s):
    rh.function(userfns.add).to(k8s)
    status = k8s.status()
    pods = status["kubernetes"]["pods"]
    assert [(p["name"], p["phase"], p["ready"], p["node"]) for p in pods] == [
        ("k8s-test-0", "Running", True, "standin-node")]
    assert status["kubernetes"]["namespace"] == "default"
    assert "add" in json.dumps(status)  # the server's own part: what it serves
    log = k8s.logs()
    assert "rh-agent: rh server started" in log
    assert "rh server 0.1.0 for cluster k8s-test listening on 127.0.0.1:32300" in log


def test_saved_and_loaded_by_name_finds_it_ready(k8s, capfd):
    k8s.save()
    again = rh.cluster("k8s-test")
    assert isinstance(again, KubernetesCluster) and again.config() == k8s.config()
    capfd.readouterr()
    assert rh.function(userfns.add).to(again)(2, 3) == 5
    shown = capfd.readouterr().err
    assert "installing rh" not in shown and "applying StatefulSet k8s-test" in shown, shown
    assert "found" in shown  # the StatefulSet as it was: nothing replaced


def test_factory_and_rh_cluster_make_the_same_record():
    """rh.kubernetes_cluster is rh_core's attribute (the provider's factory), and
    rh.cluster(provider="kubernetes", ...) makes the same record."""
    import rh_core

    made = rh_core.kubernetes_cluster(name="same", namespace="team", gpus=1, gpu_type="A100",
                                      node_selector={"pool": "gpu"})
    other = rh.cluster(name="same", provider="kubernetes", namespace="team", gpus=1,
                       gpu_type="A100", node_selector={"pool": "gpu"})
    assert made.config() == other.config()
    assert made.config()["subtype"] == "kubernetes"
    assert made.server_connection_type == "k8s_portforward"


def test_rh_plugins_lists_the_provider_and_its_connection():
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "plugins", "--json"],
                         capture_output=True, text=True, check=True).stdout
    mine = {p["name"]: p for p in json.loads(out)}["kubernetes"]
    assert mine["distribution"] == "rh-kubernetes"
    assert mine["registers"] == ["provider kubernetes", "connection k8s_portforward"]
    table = subprocess.run([sys.executable, "-m", "rh_core.cli", "plugins"], capture_output=True,
                           text=True, check=True, env={**__import__("os").environ,
                                                       "COLUMNS": "250"}).stdout
    assert "provider kubernetes, connection k8s_portforward" in table


def test_restart_server_keeps_the_pod_and_its_functions(k8s):
    add = rh.function(userfns.add).to(k8s)
    before = k8s.client().health()["pid"]
    pods = k8s.status()["kubernetes"]["pods"]
    k8s.restart_server()
    assert k8s.client().health()["pid"] != before
    assert add(4, 5) == 9  # served again by the new server
    assert k8s.status()["kubernetes"]["pods"] == pods  # the same pod, not restarted
