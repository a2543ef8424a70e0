"""A cluster of two pods (``num_nodes=2``): rh in both, Ray across them, a map spread over both
pods, autostop kept by the head alone. The Kubernetes API is the Starlette stand-in (no API
server runs here); the pods are its sandboxes, each in a network namespace of its own with its
pod IP on the stand-in's bridge; the rh servers, the agents and Ray in them are real."""

from __future__ import annotations

import k8sfns
from test_autostop import _stopped, wait_for

import rh_core as rh


def test_two_pods_run_ray_a_map_spreads_over_both_and_the_head_alone_stops_them(own, api):
    c = own("multi", num_nodes=2, autostop_mins=0.2)  # 12 s
    c.up()
    ips = c.provider.nodes()
    assert len(ips) == 2 and len(set(ips)) == 2
    # A bring-up that takes longer than the idle limit (here: the head's agent waiting 15 s for
    # a third pod to join Ray, as up() waits for slow pods, before any call) is not idleness:
    # the cluster must not scale itself to 0 under it.
    status, info = c.provider._agent("multi-0", "POST", "/ray/wait",
                                     body=b'{"nodes": 3, "seconds": 15}', timeout=60)
    assert status == 504 and "RH_RAY_NODES 2" in info["output"]
    assert not _stopped(api, "multi")
    # The server's idle rule may have ended it during the wait; the agent starts it again then
    # (as up() does after Ray, wait until it answers).
    status = wait_for("the head's server answering", lambda: _status(c), 60)
    assert status["kubernetes"]["replicas"] == 2
    f = rh.function(k8sfns.pod_ip).to(c)
    assert f() == ips[0]  # a plain call runs on the head
    assert set(f.map(list(range(40)))) == set(ips)  # every item answered, from both pods
    c.up()  # again: Ray is already there on both pods, nothing is started twice
    assert set(f.map(list(range(40)))) == set(ips)
    # The other pod's server gets no calls (maps reach it through Ray): only the head keeps the
    # idle rule, so a call longer than the limit on the head is not cut by the other pod.
    assert rh.function(k8sfns.nap).to(c)(20, "whole") == "whole"
    wait_for("the head scaling the StatefulSet to 0", lambda: _stopped(api, "multi"))
    assert c.status()["kubernetes"]["replicas"] == 0


def _status(c):
    try:
        return c.status()
    except rh.ConnectionFailedError:  # starting again
        return None
