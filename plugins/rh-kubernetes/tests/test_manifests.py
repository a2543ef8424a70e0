"""The objects a cluster spec becomes, as ``kubernetes.client`` models, field by field (no API
server needed: nothing is sent)."""

from __future__ import annotations

import pytest
from kubernetes import client as k
from rh_kubernetes import manifests
from rh_kubernetes.cluster import kubernetes_cluster

LABELS = {"rh.cluster": "m", "app.kubernetes.io/managed-by": "rh"}


def _pod(**fields) -> k.V1PodSpec:
    return manifests.stateful_set(kubernetes_cluster(name="m", **fields)).spec.template.spec


@pytest.mark.parametrize("fields, requests, limits", [
    ({}, {"cpu": "2", "memory": "4Gi"}, {"memory": "4Gi"}),
    ({"cpus": "500m", "memory": "512Mi"}, {"cpu": "500m", "memory": "512Mi"},
     {"memory": "512Mi"}),
    ({"cpus": 4, "memory": None}, {"cpu": "4"}, None),
    ({"gpus": 2}, {"cpu": "2", "memory": "4Gi"}, {"memory": "4Gi", "nvidia.com/gpu": "2"}),
])
def test_resources(fields, requests, limits):
    res = _pod(**fields).containers[0].resources
    assert (res.requests, res.limits) == (requests, limits)


@pytest.mark.parametrize("fields, selector", [
    ({}, None),
    ({"node_selector": {"pool": "cpu"}}, {"pool": "cpu"}),
    ({"gpus": 1, "gpu_type": "NVIDIA-A100-SXM4-40GB"},
     {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}),
    ({"gpus": 1, "gpu_type": "cloud.google.com/gke-accelerator=nvidia-l4",
      "node_selector": {"pool": "gpu"}},
     {"pool": "gpu", "cloud.google.com/gke-accelerator": "nvidia-l4"}),
])
def test_node_selector(fields, selector):
    assert _pod(**fields).node_selector == selector


def test_tolerations_pull_secrets_service_account():
    spec = _pod(tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
                             {"key": "team", "value": "ml", "tolerationSeconds": 60}],
                image_pull_secrets=["regcred"], service_account="trainer")
    assert [(t.key, t.operator, t.value, t.effect, t.toleration_seconds)
            for t in spec.tolerations] == [("gpu", "Exists", None, "NoSchedule", None),
                                           ("team", None, "ml", None, 60)]
    assert [s.name for s in spec.image_pull_secrets] == ["regcred"]
    assert spec.service_account_name == "trainer"


def test_labels_on_every_object_and_the_selector():
    c = kubernetes_cluster(name="m")
    sts, svc, secret = (manifests.stateful_set(c), manifests.service(c),
                        manifests.token_secret(c, "t0ken"))
    for obj in (sts, svc, secret, sts.spec.template):
        assert obj.metadata.labels == LABELS
    assert sts.spec.selector.match_labels == LABELS and svc.spec.selector == LABELS
    assert manifests.selector("m") == "rh.cluster=m,app.kubernetes.io/managed-by=rh"
    assert (sts.spec.replicas, sts.spec.service_name, sts.spec.pod_management_policy) == \
        (1, "m", "Parallel")
    assert svc.spec.cluster_ip == "None"  # headless


def test_container_agent_probe_volumes_and_env():
    spec = _pod(env_vars={"WANDB_MODE": "offline", "RH_HOME": "/elsewhere"}, num_nodes=1)
    c = spec.containers[0]
    assert c.command[:2] == ["python3", "-c"] and c.command[2] == manifests.AGENT_SOURCE
    # Kubernetes expands $(VAR) in commands: the agent must hold none.
    assert "$(" not in manifests.AGENT_SOURCE
    assert c.readiness_probe._exec.command[:2] == ["python3", "-c"]
    assert "http://127.0.0.1:32300/health" in c.readiness_probe._exec.command[2]
    env = {e.name: e.value for e in c.env}
    assert env["RH_HOME"] == "/mnt/rh"  # the user's env_vars do not replace rh's own
    assert env["WANDB_MODE"] == "offline" and env["RH_SERVER_PORT"] == "32300"
    assert [(m.name, m.mount_path, bool(m.read_only)) for m in c.volume_mounts] == [
        ("rh-home", "/mnt/rh", False), ("rh-token", "/mnt/rh-token", True)]
    token = next(v for v in spec.volumes if v.name == "rh-token").secret
    assert (token.secret_name, token.default_mode) == ("m-rh-token", 0o400)
    assert next(v for v in spec.volumes if v.name == "rh-home").empty_dir is not None


def test_spec_digest_changes_with_the_spec():
    a = manifests.stateful_set(kubernetes_cluster(name="m"))
    b = manifests.stateful_set(kubernetes_cluster(name="m", memory="8Gi"))
    key = manifests.SPEC_ANNOTATION
    assert a.metadata.annotations[key] != b.metadata.annotations[key]
    assert a.metadata.annotations[key] == manifests.stateful_set(
        kubernetes_cluster(name="m")).metadata.annotations[key]


@pytest.mark.parametrize("fields, account, rbac", [
    ({}, None, False),
    ({"autostop_mins": 30}, "m-rh-autostop", True),
    ({"autostop_mins": 0.5}, "m-rh-autostop", True),
    ({"autostop_mins": -1}, "m-rh-autostop", True),  # keep_warm(-1): the pods stay as they are
    ({"autostop_mins": 30, "service_account": "mine"}, "mine", False),
    ({"service_account": "mine"}, "mine", False),
])
def test_pods_service_account_and_whether_rh_makes_the_autostop_one(fields, account, rbac):
    c = kubernetes_cluster(name="m", **fields)
    assert _pod(**fields).service_account_name == account
    assert manifests.makes_autostop_account(c) is rbac


def test_autostop_rbac_allows_scaling_only_this_statefulset():
    sa, role, binding = manifests.autostop_rbac(kubernetes_cluster(name="m", namespace="team",
                                                                   autostop_mins=30))
    for obj in (sa, role, binding):
        assert (obj.metadata.name, obj.metadata.labels) == ("m-rh-autostop", LABELS)
    assert [(r.api_groups, r.resources, r.resource_names, r.verbs) for r in role.rules] == [
        (["apps"], ["statefulsets/scale"], ["m"], ["get", "patch"]),
        (["apps"], ["statefulsets"], ["m"], ["get"]),
        ([""], ["configmaps"], ["m-rh-state"], ["get", "update"])]
    assert (binding.role_ref.kind, binding.role_ref.name, binding.role_ref.api_group) == (
        "Role", "m-rh-autostop", "rbac.authorization.k8s.io")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
        ("ServiceAccount", "m-rh-autostop", "team")]


def test_the_agent_is_told_what_to_scale():
    env = {e.name: e for e in _pod(autostop_mins=30).containers[0].env}
    assert env["RH_STATEFULSET"].value == "m"
    assert env["RH_STATE_CONFIGMAP"].value == "m-rh-state"
    assert env["RH_NAMESPACE"].value_from.field_ref.field_path == "metadata.namespace"
    assert env["RH_SERVICE_ACCOUNT"].value_from.field_ref.field_path == \
        "spec.serviceAccountName"
    assert "RH_STATE_CONFIGMAP" not in {e.name for e in _pod().containers[0].env}
