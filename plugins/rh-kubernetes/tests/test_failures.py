"""What goes wrong shows as a clear error. Stood in (no API server can run here): the API
server's refusals (RBAC, a missing namespace, a quota) and the scheduler's and kubelet's pod
states (unschedulable, an image that cannot be pulled, a crash loop, OOMKilled), from the
stand-in's scripted node and images; the real ``kubernetes`` client reads them."""

from __future__ import annotations

import pytest
from rh_kubernetes.errors import (
    ForbiddenError,
    KubeConfigError,
    NamespaceNotFoundError,
    PodStartError,
    QuotaExceededError,
)

import rh_core as rh


def test_unschedulable_says_what_no_node_has(own):
    with pytest.raises(PodStartError, match=r"pod big-0 cannot be scheduled: 0/1 nodes are "
                                            r"available: 1 Insufficient cpu\..*cpus=64"):
        own("big", cpus="64").up()


def test_gpus_no_node_has(own):
    with pytest.raises(PodStartError, match=r"1 Insufficient nvidia.com/gpu.*gpus=1"):
        own("gpu", gpus=1).up()


def test_node_selector_no_node_matches(own):
    with pytest.raises(PodStartError, match=r"didn't match Pod's node affinity/selector"):
        own("picky", gpus=0, node_selector={"pool": "tpu"}).up()


def test_image_that_cannot_be_pulled(own):
    with pytest.raises(PodStartError, match=r"pod nopull-0 cannot pull its image "
                                            r"'python:3.99-nope' \(ImagePullBackOff\): Failed to "
                                            r"pull image \"python:3.99-nope\".*not found.*"
                                            r"image_pull_secrets"):
        own("nopull", image="python:3.99-nope").up()


def test_image_without_python_crash_loops(own):
    with pytest.raises(PodStartError, match=r"(?s)the container of pod nopy-0 keeps crashing "
                                            r"\(CrashLoopBackOff, exit code 127.*python3.*"
                                            r"log:\n.*python3"):
        own("nopy", image="rh-test/no-python:1").up()


def test_too_little_memory_is_oomkilled(own):
    with pytest.raises(PodStartError, match=r"was killed for using more memory than its limit "
                                            r"\(OOMKilled, memory=64Mi\): give the cluster more"):
        own("tiny", memory="64Mi").up()


def test_quota_exceeded(own):
    with pytest.raises(QuotaExceededError, match=r"cannot create its pods: .*exceeded quota: "
                                                 r"compute-quota, requested: requests.cpu=2.*"
                                                 r"limited: requests.cpu=1"):
        own("greedy", namespace="quota-ns", cpus="2").up()


def test_rbac_refusal_names_the_verb_and_resource(own):
    with pytest.raises(ForbiddenError, match=r"Kubernetes refused to create statefulsets.apps "
                                             r"in namespace 'default' \(RBAC, 403 Forbidden\): "
                                             r"statefulsets.apps is forbidden: User \"limited\" "
                                             r"cannot create.*needs the verb 'create'"):
        own("limited", context="standin-limited").up()


def test_missing_namespace(own):
    with pytest.raises(NamespaceNotFoundError, match=r"the namespace 'nope' does not exist: "
                                                     r"create it \(kubectl create namespace "
                                                     r"nope\)"):
        own("lost", namespace="nope").up()


def test_unknown_context_lists_the_known_ones(own):
    with pytest.raises(KubeConfigError, match=r"has no context 'prod'; its contexts: standin, "
                                              r"standin-limited"):
        own("ctx", context="prod").up()


def test_no_kubeconfig(own, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeConfigError, match=r"no kubeconfig: KUBECONFIG=.*absent.* names no "
                                              r"file that exists.*not run inside a Kubernetes "
                                              r"pod"):
        own("nokube").up()
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeConfigError, match=r"KUBECONFIG is not set and ~/.kube/config does "
                                              r"not exist"):
        own("nokube2").up()


@pytest.mark.parametrize("fields, says", [
    ({"name": "My_Cluster"}, "cannot name Kubernetes objects: use lowercase letters"),
    ({"name": "k", "cpus": "two"}, "cpus='two' is not a Kubernetes CPU quantity"),
    ({"name": "k", "memory": "4GB"}, "memory='4GB' is not a Kubernetes memory quantity"),
    ({"name": "k", "gpus": -1}, "gpus must be a whole number of 0 or more"),
    ({"name": "k", "gpu_type": "A100"}, "gpu_type='A100' needs gpus="),
    ({"name": "k", "num_nodes": 0}, "num_nodes must be a whole number of 1 or more"),
    ({"name": "k", "tolerations": [{"key": "a", "effects": "NoSchedule"}]},
     r"unknown key\(s\) \['effects'\]"),
    ({"name": "k", "env_vars": {"A B": "1"}}, r"env_vars names \['A B'\] are not valid"),
    ({"name": "k", "namespace": "Team"}, "is not a Kubernetes namespace name"),
    ({"name": "k", "autostop_mins": 0}, r"autostop_mins is the idle minutes after which the "
                                        r"cluster scales to no pods \(a number above 0; "
                                        r"fractions allowed\), or -1 or None for never; got 0"),
    ({"name": "k", "autostop_mins": "10"}, r"autostop_mins is the idle minutes .* got '10'"),
    ({}, "a kubernetes cluster needs a name"),
])
def test_bad_arguments_say_what_to_give(fields, says):
    with pytest.raises(rh.ConfigError, match=says):
        rh.kubernetes_cluster(**fields)


def test_keep_warm_refuses_what_autostop_refuses():
    c = rh.kubernetes_cluster(name="warm")
    with pytest.raises(rh.ConfigError, match=r"autostop_mins is the idle minutes .* got -5"):
        c.keep_warm(-5)
