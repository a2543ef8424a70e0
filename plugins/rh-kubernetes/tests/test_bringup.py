"""A cluster on the Kubernetes stand-in (no API server can run here): the real ``kubernetes``
client reaches the stand-in through a kubeconfig; the pod's agent and the rh server run for
real in the pod's sandbox, reached through the portforward websocket."""

from __future__ import annotations

import userfns

import rh_core as rh


def test_bring_up_and_call(k8s, capfd):
    """Stood in: the API server, the StatefulSet controller, the scheduler and the kubelet."""
    f = rh.function(userfns.concat).to(k8s)
    assert f("run", "house") == "runhouse"
    shown = capfd.readouterr().err
    for step in ("applying StatefulSet k8s-test in namespace default (context standin)",
                 "pod k8s-test-0: Scheduled: Successfully assigned default/k8s-test-0",
                 "building the wheelhouse", "installing rh in pod k8s-test-0",
                 "waiting for the server's readiness probe", "syncing userpkg"):
        assert step in shown, shown
