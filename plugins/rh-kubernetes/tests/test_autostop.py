"""Autostop of kubernetes clusters: after ``autostop_mins`` without work the server stops, the
agent in the pod scales its own StatefulSet to 0 replicas through the in-cluster API, and the
cluster comes back on its next use or ``c.up()``.

Stood in (no API server can run here): the API server, with the RBAC it applies to the pods'
service-account tokens and the StatefulSet's ``scale`` subresource; the StatefulSet controller
and the kubelet, which honour the replicas and give each pod its in-cluster environment
(``KUBERNETES_SERVICE_HOST``/``PORT`` at the stand-in, a token and ``ca.crt`` mounted at
``/var/run/secrets/kubernetes.io/serviceaccount`` in the pod's private mount namespace). Real:
the agent and its HTTPS request to the API, the rh server and its idle rule, the calls, the
port-forward. The deadlines below are generous; nothing asserts how long a step took.
"""

from __future__ import annotations

import json
import time

import k8sfns
import pytest

import rh_core as rh

#: Idle minutes before the cluster stops itself (the core takes fractions): 6 seconds.
AUTOSTOP = 0.1


def wait_for(what: str, check, timeout: float = 180.0):
    """Poll ``check()`` until it answers something true; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(0.5)


def _owned(api, name: str) -> dict[str, list[str]]:
    core, apps, rbac = api
    sel = f"rh.cluster={name}"
    return {kind: sorted(o.metadata.name for o in fn("default", label_selector=sel).items)
            for kind, fn in (("statefulsets", apps.list_namespaced_stateful_set),
                             ("services", core.list_namespaced_service),
                             ("secrets", core.list_namespaced_secret),
                             ("configmaps", core.list_namespaced_config_map),
                             ("serviceaccounts", core.list_namespaced_service_account),
                             ("roles", rbac.list_namespaced_role),
                             ("rolebindings", rbac.list_namespaced_role_binding))}


def _pods(api, name: str) -> list[str]:
    return [p.metadata.name for p in api[0].list_namespaced_pod(
        "default", label_selector=f"rh.cluster={name}").items]


def _replicas(api, name: str) -> int:
    return api[1].read_namespaced_stateful_set_scale(name, "default").spec.replicas


def _after(log: str, first: str, then: str) -> str | None:
    """``log`` when it says ``first`` and, after it, ``then``."""
    at = log.find(first)
    return log if at >= 0 and then in log[at:] else None


def _stopped(api, name: str) -> bool:
    return _replicas(api, name) == 0 and not _pods(api, name)


def _check_the_pods_token_may_scale_only_its_own_statefulset(standin, api):
    """The token the stand-in's kubelet mounted into k8s-idle-0, used with the real client."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    uid = api[0].read_namespaced_pod("k8s-idle-0", "default").metadata.uid
    token = (standin["dir"] / "state" / "pods" / uid / "serviceaccount" / "token").read_text()
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = standin["url"], str(standin["dir"] / "tls" / "cert.pem")
    cfg.api_key = {"authorization": f"Bearer {token}"}
    pod_api = client.ApiClient(cfg)
    apps, core = client.AppsV1Api(pod_api), client.CoreV1Api(pod_api)
    assert apps.read_namespaced_stateful_set_scale("k8s-idle", "default").spec.replicas == 1
    for refused in (lambda: apps.patch_namespaced_stateful_set_scale(
                        "someone-else", "default", {"spec": {"replicas": 0}}),
                    lambda: core.list_namespaced_secret("default")):
        with pytest.raises(ApiException) as e:
            refused()
        assert e.value.status == 403
        assert 'User "system:serviceaccount:default:k8s-idle-rh-autostop" cannot' in \
            json.loads(e.value.body)["message"]


def test_idle_cluster_stops_itself_not_during_a_call_and_comes_back(standin, api):
    c = rh.kubernetes_cluster(name="k8s-idle", cpus="1", memory="1Gi", autostop_mins=AUTOSTOP)
    try:
        nap = rh.function(k8sfns.nap).to(c)
        everything = {"statefulsets": ["k8s-idle"], "services": ["k8s-idle"],
                      "secrets": ["k8s-idle-rh-token"], "configmaps": ["k8s-idle-rh-state"],
                      "serviceaccounts": ["k8s-idle-rh-autostop"],
                      "roles": ["k8s-idle-rh-autostop"], "rolebindings": ["k8s-idle-rh-autostop"]}
        assert _owned(api, "k8s-idle") == everything
        assert c.status()["kubernetes"]["autostop_mins"] == AUTOSTOP
        _check_the_pods_token_may_scale_only_its_own_statefulset(standin, api)
        # A call running three times the idle limit: the server does not stop under it.
        assert nap(18, "all of it") == "all of it"

        # Idle: the pod scales its StatefulSet to 0 and goes; everything else rh made stays.
        wait_for("the StatefulSet scaled to 0 and its pod gone", lambda: _stopped(api, "k8s-idle"))
        assert _owned(api, "k8s-idle") == everything
        status = c.status()
        assert status["state"] == "stopped"
        assert status["kubernetes"]["replicas"] == 0
        assert status["kubernetes"]["pods"] == []
        assert status["kubernetes"]["stopped"] == ("autostop scaled StatefulSet k8s-idle to 0 "
                                                   "replicas after 0.1 idle minutes")
        assert "cluster 'k8s-idle' is stopped: autostop scaled StatefulSet" in c.logs()
        assert not c.is_up()

        # The next call brings it back, and the new pod serves what the old one did (kept in
        # the state ConfigMap as it stopped).
        assert nap(0, "back") == "back"
        assert _replicas(api, "k8s-idle") == 1
        assert c.status()["kubernetes"]["stopped"] is None
        log = c.logs()
        assert "rh-agent: served functions taken back from ConfigMap k8s-idle-rh-state" in log

        # It stops again when idle, and c.up() brings it back; .to() works on it as ever.
        wait_for("the second stop", lambda: _stopped(api, "k8s-idle"))
        c.up()
        assert [(p["name"], p["ready"]) for p in c.status()["kubernetes"]["pods"]] == [
            ("k8s-idle-0", True)]
        assert nap(0, "again") == "again"
        assert rh.function(k8sfns.chatter).to(c)(2) == 2
        assert c.client().health()["autostop_mins"] == AUTOSTOP  # the new server has the rule

        c.down()
        # The StatefulSet goes last (foreground deletion: once its pods are gone).
        wait_for("every object rh made deleted",
                 lambda: _owned(api, "k8s-idle") == {kind: [] for kind in everything})
    finally:
        c.down()


def test_own_service_account_without_the_permission_is_said_and_the_pod_keeps_serving(
        standin, api):
    core = api[0]
    from kubernetes import client

    core.create_namespaced_service_account("default", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="plain-sa")))
    c = rh.kubernetes_cluster(name="k8s-nosa", cpus="1", memory="1Gi", service_account="plain-sa",
                              autostop_mins=AUTOSTOP)
    try:
        nap = rh.function(k8sfns.nap).to(c)
        # rh makes no account of its own when the user gives one.
        owned = _owned(api, "k8s-nosa")
        assert (owned["serviceaccounts"], owned["roles"], owned["rolebindings"]) == ([], [], [])
        refused = ('statefulsets.apps "k8s-nosa" is forbidden: User '
                   '"system:serviceaccount:default:plain-sa" cannot patch resource '
                   '"statefulsets/scale" in API group "apps" in the namespace "default"')
        # Watch the pod's log through the API (a request to the server would be work).
        log = wait_for("the refusal in the pod's log, then the server started again",
                       lambda: _after(core.read_namespaced_pod_log(
                           "k8s-nosa-0", "default", container="rh"), refused,
                           "rh server started again: this pod keeps serving"))
        assert "autostop could not scale StatefulSet k8s-nosa to 0 replicas" in log
        status = c.status()
        error = status["kubernetes"]["autostop_error"]
        assert refused in error
        assert ("The pod's service account (plain-sa) needs get and patch on statefulsets/scale "
                "(API group apps) for k8s-nosa") in error
        assert "the server was started again" in error
        assert "autostop could not scale StatefulSet k8s-nosa to 0 replicas" in c.logs()
        # The pod keeps serving: the same pod, its server started again with nap still served.
        assert nap(0, "still here") == "still here"
        assert _replicas(api, "k8s-nosa") == 1
        assert [p["restarts"] for p in status["kubernetes"]["pods"]] == [0]
    finally:
        c.down()
        core.delete_namespaced_service_account("plain-sa", "default")
