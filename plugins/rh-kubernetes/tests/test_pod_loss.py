"""A pod lost during a call: an eviction under node pressure (the call fails with the eviction's
reason; the cluster comes back with up()), and a container killed for memory (the call fails
saying so; the next call reconnects to the restarted server, whose functions came back). Stood
in (no API server can run here): the kubelet's eviction and OOM kill, through the stand-in's
test controls; the rh server and the calls are real."""

from __future__ import annotations

import threading
import time

import k8sfns

import rh_core as rh


def _call_in_background(f, *args):
    out: dict = {}

    def run():
        try:
            out["result"] = f(*args)
        except Exception as e:  # noqa: BLE001 - the test reads it
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_eviction_mid_call_names_it_and_up_brings_it_back(standin, control):
    c = rh.kubernetes_cluster(name="k8s-evict", cpus="1", memory="1Gi")
    try:
        nap = rh.function(k8sfns.nap).to(c)
        t, out = _call_in_background(nap, 30, "late")
        time.sleep(1.5)
        control("k8s-evict-0", "evict", message="The node was low on resource: memory. "
                                                "Threshold quantity: 100Mi, available: 42Mi.")
        t.join(60)
        assert "error" in out, out
        assert isinstance(out["error"], rh.ConnectionFailedError)
        assert ("pod k8s-evict-0 was evicted: The node was low on resource: memory. Threshold "
                "quantity: 100Mi, available: 42Mi.") in str(out["error"])
        assert "bring the cluster up again with c.up()" in str(out["error"])
        c.up()
        assert rh.function(k8sfns.nap).to(c)(0, "back") == "back"
    finally:
        c.down()


def test_container_killed_for_memory_mid_call_then_calls_go_on(k8s, control):
    nap = rh.function(k8sfns.nap).to(k8s)
    assert nap(0, "warm") == "warm"
    t, out = _call_in_background(nap, 30, "late")
    time.sleep(1.5)
    control("k8s-test-0", "oomkill")
    t.join(60)
    assert isinstance(out.get("error"), rh.ConnectionFailedError), out
    assert ("the container of pod k8s-test-0 was restarted (OOMKilled, exit code 137): it used "
            "more memory than its limit (memory=2Gi)") in str(out["error"])
    # The same pod, its volume kept: the server comes back with its functions.
    assert nap(0, "again") == "again"
    assert [p["restarts"] for p in k8s.status()["kubernetes"]["pods"]] == [1]


def test_down_deletes_only_what_rh_made(standin):
    """Objects another tool made with the same cluster label, and other clusters' objects,
    stay."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(standin["kubeconfig"])))
    theirs = client.V1Secret(metadata=client.V1ObjectMeta(name="users-own",
                                                          labels={"rh.cluster": "k8s-down"}),
                             string_data={"x": "y"})
    api.create_namespaced_secret("default", theirs)
    c = rh.kubernetes_cluster(name="k8s-down", cpus="1", memory="1Gi")
    try:
        c.provider._apply()  # the objects, without waiting for a server
        names = {s.metadata.name for s in api.list_namespaced_secret(
            "default", label_selector="rh.cluster=k8s-down").items}
        assert names == {"users-own", "k8s-down-rh-token"}
        c.down()
        left = api.list_namespaced_secret("default", label_selector="rh.cluster=k8s-down").items
        assert [s.metadata.name for s in left] == ["users-own"]
        assert api.list_namespaced_pod("default", label_selector="rh.cluster=k8s-down").items == []
        assert api.list_namespaced_service("default",
                                           label_selector="rh.cluster=k8s-down").items == []
        c.down()  # again: nothing to do, no error
    finally:
        api.delete_namespaced_secret("users-own", "default")
