"""keep_warm on kubernetes clusters: the running server takes the new idle limit when its pods
may scale their StatefulSet; otherwise a warning says when it applies. Stood in (no API server
can run here): the API server, the StatefulSet controller and the kubelet (see
``test_autostop.py``); the agent, the rh server and the calls are real. (In a file of its own
after ``test_bringup.py``, whose first test brings the session's cluster up.)"""

from __future__ import annotations

import time

import k8sfns
import pytest

import rh_core as rh

#: Idle minutes before the cluster stops itself: 6 seconds.
AUTOSTOP = 0.1


def _replicas(api, name: str) -> int:
    return api[1].read_namespaced_stateful_set_scale(name, "default").spec.replicas


def test_keep_warm_never_keeps_the_running_cluster_up(standin, api):
    """``keep_warm(-1)`` restarts the running server without the idle rule (served functions
    stay); the pod is not replaced."""
    c = rh.kubernetes_cluster(name="k8s-warm", cpus="1", memory="1Gi", autostop_mins=AUTOSTOP)
    try:
        nap = rh.function(k8sfns.nap).to(c)
        assert c.client().health()["autostop_mins"] == AUTOSTOP
        uid = api[0].read_namespaced_pod("k8s-warm-0", "default").metadata.uid
        c.keep_warm(-1)
        assert c.client().health()["autostop_mins"] is None
        assert c.status()["kubernetes"]["autostop_mins"] is None
        # Twice the old limit with nothing to do (a wait, not a timing assertion): still up,
        # the same pod, nap still served.
        time.sleep(AUTOSTOP * 60 * 2)
        assert _replicas(api, "k8s-warm") == 1
        assert nap(0, "warm") == "warm"
        assert api[0].read_namespaced_pod("k8s-warm-0", "default").metadata.uid == uid
        c.up()  # up() with the new setting: nothing to replace
        assert api[0].read_namespaced_pod("k8s-warm-0", "default").metadata.uid == uid
    finally:
        c.down()


def test_keep_warm_on_a_cluster_made_without_autostop_says_when_it_applies(k8s):
    """Its pods have no permission to scale their StatefulSet: the new limit waits for the next
    c.up() (which would replace them), and the running server is left as it is."""
    rh.function(k8sfns.nap).to(k8s)
    try:
        with pytest.warns(UserWarning, match=r"cluster 'k8s-test' was made without autostop: "
                                             r"its pods have no permission to scale their "
                                             r"StatefulSet. The new setting applies at the next "
                                             r"c.up\(\)"):
            k8s.keep_warm(10)
        assert k8s.client().health()["autostop_mins"] is None
    finally:
        k8s.autostop_mins = None  # the session's cluster stays as the other tests expect it
