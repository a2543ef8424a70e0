"""The record of a Kubernetes cluster, its checks, and ``rh.kubernetes_cluster``."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.cluster import Cluster

#: The port the server listens on inside each pod (on the pod's loopback).
SERVER_PORT = 32300
#: A name Kubernetes takes for a StatefulSet whose pods also carry it (DNS-1035, with room for
#: the pods' ``-<ordinal>`` and the controller's revision hash).
NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_NAME = 52
CPU_RE = re.compile(r"\d+(\.\d+)?m?|\.\d+")
MEMORY_RE = re.compile(r"\d+(\.\d+)?([KMGTPE]i?|[kmMGTPE]|e\d+)?")
TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def _quantity(pattern: re.Pattern, what: str, example: str):
    def check(inst, attr, value):
        if value is None:
            return
        if not pattern.fullmatch(str(value)):
            raise ConfigError(f"{attr.name}={value!r} is not a Kubernetes {what} quantity: give "
                              f"e.g. {example}")
    return check


def _str_or_none(value):
    return None if value is None else str(value)


def _non_negative(inst, attr, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attr.name} must be a whole number of 0 or more, got {value!r}")


def _positive(inst, attr, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attr.name} must be a whole number of 1 or more, got {value!r}")


def _str_dict(inst, attr, value):
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise ConfigError(f"{attr.name} must be a dict of strings to strings, got {value!r}")
    if attr.name == "env_vars":
        bad = [k for k in value if not ENV_NAME_RE.fullmatch(k)]
        if bad:
            raise ConfigError(f"env_vars names {bad} are not valid environment variable names")


def _tolerations(inst, attr, value):
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError("tolerations must be a list of dicts like {'key': 'gpu', 'operator': "
                          "'Exists', 'effect': 'NoSchedule'}")
    for t in value:
        unknown = set(t) - TOLERATION_KEYS
        if unknown:
            raise ConfigError(f"a toleration has unknown key(s) {sorted(unknown)}; known: "
                              f"{sorted(TOLERATION_KEYS)}")
        if t.get("operator", "Equal") not in ("Equal", "Exists"):
            raise ConfigError(f"a toleration's operator is 'Equal' or 'Exists', got "
                              f"{t['operator']!r}")


def _names(inst, attr, value):
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{attr.name} must be a list of Secret names, got {value!r}")


def _autostop(inst, attr, value):
    if value is None or value == -1:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"autostop_mins is the idle minutes after which the cluster scales "
                          f"to no pods (a number above 0; fractions allowed), or -1 or None "
                          f"for never; got {value!r}")


@attrs.define(kw_only=True, slots=False)
class KubernetesCluster(Cluster):
    """Pods on a Kubernetes cluster you already have: one StatefulSet per rh cluster."""

    subtype: ClassVar[str] = "kubernetes"

    server_connection_type: str = "k8s_portforward"
    #: The namespace the cluster's objects go to.
    namespace: str = "default"
    #: The kubeconfig context (None: the current context; in a pod without a kubeconfig, the
    #: pod's own service account).
    context: str | None = None
    #: The container image: any image with ``python3`` (the same Python version as this
    #: machine's, for the wheels rh ships into the pod).
    image: str = "python:3.11-slim"
    #: CPU and memory each pod asks for (Kubernetes quantities: "2", "500m", "4Gi").
    cpus: str | None = attrs.field(default="2", converter=_str_or_none,
                                   validator=_quantity(CPU_RE, "CPU", "'2' or '500m'"))
    memory: str | None = attrs.field(default="4Gi", converter=_str_or_none,
                                     validator=_quantity(MEMORY_RE, "memory", "'4Gi' or '512Mi'"))
    #: NVIDIA GPUs per pod (``nvidia.com/gpu`` in the limits) and, optionally, their model: the
    #: value of the node label ``nvidia.com/gpu.product`` (or ``"label=value"``).
    gpus: int = attrs.field(default=0, validator=_non_negative)
    gpu_type: str | None = None
    #: Pods (nodes) of the cluster; the first is the head, which runs the server clients use.
    num_nodes: int = attrs.field(default=1, validator=_positive)
    node_selector: dict[str, str] | None = attrs.field(default=None, validator=_str_dict)
    #: Kubernetes tolerations, as dicts: {"key", "operator", "value", "effect"}.
    tolerations: list[dict[str, Any]] | None = attrs.field(default=None, validator=_tolerations)
    service_account: str | None = None
    #: Environment variables of the pods (plain values: put secrets in a Kubernetes Secret).
    env_vars: dict[str, str] | None = attrs.field(default=None, validator=_str_dict)
    #: Names of existing Secrets to pull a private image with.
    image_pull_secrets: list[str] | None = attrs.field(default=None, validator=_names)
    #: Scale the cluster to no pods after this many idle minutes: no call running and no
    #: request but ``/health`` (None or -1: never). The pods' service account needs get and
    #: patch on the StatefulSet's ``scale``: rh makes one with that Role unless
    #: ``service_account`` is given.
    autostop_mins: float | None = attrs.field(default=None, validator=_autostop)

    def __attrs_post_init__(self):
        name = self.short_name
        if not name:
            raise ConfigError("a kubernetes cluster needs a name: rh.kubernetes_cluster(name='k')")
        if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"the cluster name {name!r} cannot name Kubernetes objects: use lowercase "
                f"letters, digits and '-', starting with a letter and ending with a letter or "
                f"digit, at most {MAX_NAME} characters (e.g. 'my-cluster')")
        if not NAME_RE.fullmatch(self.namespace or "") or len(self.namespace) > 63:
            raise ConfigError(f"namespace {self.namespace!r} is not a Kubernetes namespace name "
                              f"(lowercase letters, digits and '-')")
        if self.gpu_type and not self.gpus:
            raise ConfigError(f"gpu_type={self.gpu_type!r} needs gpus= (how many per pod)")
        if self.server_port is None:
            self.server_port = SERVER_PORT

    def up(self) -> KubernetesCluster:
        """Bring the cluster up, or check that it is: the workload, its pods, the server in
        each pod (a pod that was replaced gets its server again)."""
        self.provider.up()
        return self.up_if_not()

    def status(self) -> dict[str, Any]:
        """The server's status, with the pods under ``"kubernetes"``: namespace, context,
        replicas, autostop (its minutes, ``stopped`` when the cluster stopped itself, and
        ``autostop_error`` when its pod could not) and per pod its name, phase, readiness, node
        and restarts. A stopped cluster is not brought up: its status is the ``kubernetes``
        part alone, with ``"state": "stopped"``."""
        kube = self.provider.describe()
        if kube.get("stopped"):
            return {"cluster": self.short_name, "state": "stopped", "kubernetes": kube}
        return {**super().status(), "kubernetes": kube}

    def logs(self) -> str:
        """The head pod's log (the agent's lines and the server's); for a stopped cluster, a
        line saying so (its pods and their logs are gone)."""
        return self.provider.server_log() or super().logs()

    def keep_warm(self, mins: float = -1) -> KubernetesCluster:
        """Scale to no pods after ``mins`` idle minutes from now on (-1: never). A running
        server takes it at once (restarted in its pod; served functions stay) when its pods may
        scale their StatefulSet; a cluster made without autostop and without a service account
        of yours gets rh's autostop account at its next ``c.up()``, which replaces its pods."""
        _autostop(self, attrs.fields(type(self)).autostop_mins, mins)
        self.autostop_mins = mins
        self.__dict__["_keep_warm_mins"] = mins
        self.provider.keep_warm(mins)
        return self


def kubernetes_cluster(name: str | None = None, namespace: str = "default",
                       context: str | None = None, image: str = "python:3.11-slim",
                       cpus: str | None = "2", memory: str | None = "4Gi", gpus: int = 0,
                       gpu_type: str | None = None, num_nodes: int = 1,
                       node_selector: dict[str, str] | None = None,
                       tolerations: list[dict[str, Any]] | None = None,
                       service_account: str | None = None,
                       env_vars: dict[str, str] | None = None,
                       image_pull_secrets: list[str] | None = None,
                       autostop_mins: float | None = None) -> KubernetesCluster:
    """A cluster of pods on a Kubernetes cluster you already have (``rh.kubernetes_cluster``).

    Nothing is created until it is used (``c.up()``, or ``rh.function(fn).to(c)``); see
    ``docs/clusters/kubernetes.md`` for what each argument becomes in the pods' spec.
    """
    return KubernetesCluster(
        name=name, namespace=namespace, context=context, image=image, cpus=cpus, memory=memory,
        gpus=gpus, gpu_type=gpu_type, num_nodes=num_nodes, node_selector=node_selector,
        tolerations=tolerations, service_account=service_account, env_vars=env_vars,
        image_pull_secrets=image_pull_secrets, autostop_mins=autostop_mins)
