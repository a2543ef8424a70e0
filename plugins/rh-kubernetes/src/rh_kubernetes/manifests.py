"""What a cluster spec becomes in Kubernetes: the Secret with the server's owner token, the
headless Service, the StatefulSet whose pods run the agent and the server, and, for a cluster
with autostop and no service account of the user's, the ServiceAccount, Role and RoleBinding
that let its pods scale their own StatefulSet to 0, as ``kubernetes.client`` models (so each
field can be read and asserted).

Every object carries the labels of :func:`labels`; ``down`` deletes by them, and only objects
with both labels.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rh_kubernetes.cluster import KubernetesCluster

if TYPE_CHECKING:
    from kubernetes import client as k
else:
    class _Client:
        """``kubernetes.client``, imported when a manifest is first built: the provider's
        modules load whenever rh reads its registry of providers (any cluster, even the local
        one), and the client takes about 0.4 s to import."""

        def __getattr__(self, name: str):
            from kubernetes import client  # here: see the class docstring

            return getattr(client, name)

    k = _Client()

#: rh's own label pair: which cluster an object belongs to, and that rh made it.
CLUSTER_LABEL = "rh.cluster"
MANAGED_BY = ("app.kubernetes.io/managed-by", "rh")
#: An annotation holding a digest of the pod template rh wrote (a changed spec rolls the pods).
SPEC_ANNOTATION = "rh.cluster/spec-digest"
CONTAINER = "rh"
AGENT_PORT = 32301
#: Where the pods keep rh's files (an emptyDir: the virtualenv, synced code, saved specs) and
#: where the owner token's Secret is mounted.
HOME_MOUNT = "/mnt/rh"
TOKEN_MOUNT = "/mnt/rh-token"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
def _agent_source() -> str:
    """``agent.py`` as one program, after its two modules (``agent_kube``, ``agent_install``)
    are made from their sources and registered, so that its imports of them work in the pod."""
    here = Path(__file__).parent
    lines = ["import sys as _sys, types as _types"]
    for name in ("agent_kube", "agent_install"):
        source = (here / f"{name}.py").read_text()
        lines += [f"_m = _types.ModuleType({name!r})",
                  f"_sys.modules[{name!r}] = _m",
                  f"exec(compile({source!r}, {name + '.py'!r}, 'exec'), _m.__dict__)"]
    return "\n".join(lines) + "\n" + (here / "agent.py").read_text()


#: The agent: a stdlib-only program, run as ``python3 -c`` so any image with Python works.
AGENT_SOURCE = _agent_source()
#: The readiness probe: the server's health route on the pod's loopback (the server does not
#: listen on the pod's address).
READY_PROBE = ("import sys, urllib.request\n"
               "u = urllib.request.urlopen('http://127.0.0.1:%d/health', timeout=4)\n"
               "sys.exit(0 if u.status == 200 else 1)\n")


def labels(name: str) -> dict[str, str]:
    """The labels of every object of the cluster ``name``."""
    return {CLUSTER_LABEL: name, MANAGED_BY[0]: MANAGED_BY[1]}


def selector(name: str) -> str:
    """The label selector of the cluster's objects (``rh.cluster=NAME,...managed-by=rh``)."""
    return ",".join(f"{k}={v}" for k, v in labels(name).items())


def token_secret_name(name: str) -> str:
    return f"{name}-rh-token"


def autostop_account_name(name: str) -> str:
    """The name of the ServiceAccount, Role and RoleBinding rh makes for autostop."""
    return f"{name}-rh-autostop"


def makes_autostop_account(c: KubernetesCluster) -> bool:
    """Whether rh makes the cluster's autostop permission: the cluster has an autostop setting
    (``autostop_mins`` not None; ``-1`` from ``keep_warm(-1)`` keeps the account so that the
    pods are not replaced) and the user named no service account of theirs."""
    return c.autostop_mins is not None and not c.service_account


def service_account_name(c: KubernetesCluster) -> str | None:
    """The pods' service account: the user's, rh's autostop one, or None (the namespace's
    ``default``)."""
    if c.service_account:
        return c.service_account
    return autostop_account_name(c.short_name) if makes_autostop_account(c) else None


def state_map_name(name: str) -> str:
    """The ConfigMap where a pod stopping by autostop keeps what its server served."""
    return f"{name}-rh-state"


def autostop_rules(c: KubernetesCluster) -> list[k.V1PolicyRule]:
    """What the autostop Role allows, each on the cluster's own object only
    (``resourceNames``): scaling its StatefulSet, and reading and writing its state
    ConfigMap."""
    name = c.short_name
    return [k.V1PolicyRule(api_groups=["apps"], resources=["statefulsets/scale"],
                           resource_names=[name], verbs=["get", "patch"]),
            k.V1PolicyRule(api_groups=["apps"], resources=["statefulsets"],
                           resource_names=[name], verbs=["get"]),
            k.V1PolicyRule(api_groups=[""], resources=["configmaps"],
                           resource_names=[state_map_name(name)], verbs=["get", "update"])]


def state_map(c: KubernetesCluster) -> k.V1ConfigMap:
    """The cluster's state ConfigMap, made empty (the agent fills it when the cluster stops by
    autostop, and empties it when the next pod has taken what it holds)."""
    name = c.short_name
    return k.V1ConfigMap(api_version="v1", kind="ConfigMap",
                         metadata=k.V1ObjectMeta(name=state_map_name(name), labels=labels(name)))


def autostop_rbac(c: KubernetesCluster) -> tuple[k.V1ServiceAccount, k.V1Role, k.V1RoleBinding]:
    """The ServiceAccount the pods run as, a Role of :func:`autostop_rules` (this cluster's
    StatefulSet and state ConfigMap only), and the RoleBinding between them. The account's
    token is mounted only in the cluster's pods."""
    name = c.short_name
    account = autostop_account_name(name)
    meta = k.V1ObjectMeta(name=account, labels=labels(name))
    role = k.V1Role(api_version="rbac.authorization.k8s.io/v1", kind="Role", metadata=meta,
                    rules=autostop_rules(c))
    binding = k.V1RoleBinding(
        api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding", metadata=meta,
        role_ref=k.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=account),
        subjects=[k.RbacV1Subject(kind="ServiceAccount", name=account,
                                  namespace=c.namespace)])
    sa = k.V1ServiceAccount(api_version="v1", kind="ServiceAccount", metadata=meta)
    return sa, role, binding


def resources(c: KubernetesCluster) -> k.V1ResourceRequirements:
    """Requests and limits: CPU is requested (not limited: a limit throttles), memory is
    requested and limited alike, GPUs go in the limits (Kubernetes sets the request)."""
    requests, limits = {}, {}
    if c.cpus:
        requests["cpu"] = c.cpus
    if c.memory:
        requests["memory"] = limits["memory"] = c.memory
    if c.gpus:
        limits[GPU_RESOURCE] = str(c.gpus)
    return k.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def node_selector(c: KubernetesCluster) -> dict[str, str] | None:
    """The user's node_selector, plus the GPU model's label for gpu_type."""
    out = dict(c.node_selector or {})
    if c.gpu_type:
        key, sep, value = c.gpu_type.partition("=")
        if sep:
            out[key] = value
        else:
            out[GPU_PRODUCT_LABEL] = c.gpu_type
    return out or None


def tolerations(c: KubernetesCluster) -> list[k.V1Toleration] | None:
    if not c.tolerations:
        return None
    return [k.V1Toleration(key=t.get("key"), operator=t.get("operator"), value=t.get("value"),
                           effect=t.get("effect"), toleration_seconds=t.get("tolerationSeconds"))
            for t in c.tolerations]


def env(c: KubernetesCluster) -> list[k.V1EnvVar]:
    """The agent's settings first (the user's env_vars cannot replace them), then the user's."""
    own = [
        k.V1EnvVar(name="RH_HOME", value=HOME_MOUNT),
        k.V1EnvVar(name="RH_CLUSTER_NAME", value=c.short_name),
        k.V1EnvVar(name="RH_SERVER_PORT", value=str(c.server_port)),
        k.V1EnvVar(name="RH_AGENT_PORT", value=str(AGENT_PORT)),
        k.V1EnvVar(name="RH_TOKEN_FILE", value=f"{TOKEN_MOUNT}/token"),
        k.V1EnvVar(name="RH_POD_IP", value_from=k.V1EnvVarSource(
            field_ref=k.V1ObjectFieldSelector(field_path="status.podIP"))),
        # What the agent scales when the server stops by autostop, and as whom (for its
        # messages).
        k.V1EnvVar(name="RH_STATEFULSET", value=c.short_name),
        k.V1EnvVar(name="RH_NAMESPACE", value_from=k.V1EnvVarSource(
            field_ref=k.V1ObjectFieldSelector(field_path="metadata.namespace"))),
        k.V1EnvVar(name="RH_SERVICE_ACCOUNT", value_from=k.V1EnvVarSource(
            field_ref=k.V1ObjectFieldSelector(field_path="spec.serviceAccountName"))),
        k.V1EnvVar(name="PYTHONUNBUFFERED", value="1"),
    ]
    if c.autostop_mins is not None:
        own.append(k.V1EnvVar(name="RH_STATE_CONFIGMAP", value=state_map_name(c.short_name)))
    taken = {e.name for e in own}
    return own + [k.V1EnvVar(name=n, value=v) for n, v in sorted((c.env_vars or {}).items())
                  if n not in taken]


def container(c: KubernetesCluster) -> k.V1Container:
    return k.V1Container(
        name=CONTAINER,
        image=c.image,
        command=["python3", "-c", AGENT_SOURCE],
        env=env(c),
        ports=[k.V1ContainerPort(container_port=c.server_port, name="rh-server"),
               k.V1ContainerPort(container_port=AGENT_PORT, name="rh-agent")],
        resources=resources(c),
        readiness_probe=k.V1Probe(
            _exec=k.V1ExecAction(command=["python3", "-c", READY_PROBE % c.server_port]),
            period_seconds=2, timeout_seconds=5, failure_threshold=3),
        volume_mounts=[k.V1VolumeMount(name="rh-home", mount_path=HOME_MOUNT),
                       k.V1VolumeMount(name="rh-token", mount_path=TOKEN_MOUNT, read_only=True)],
    )


def pod_spec(c: KubernetesCluster) -> k.V1PodSpec:
    return k.V1PodSpec(
        containers=[container(c)],
        volumes=[k.V1Volume(name="rh-home", empty_dir=k.V1EmptyDirVolumeSource()),
                 k.V1Volume(name="rh-token", secret=k.V1SecretVolumeSource(
                     secret_name=token_secret_name(c.short_name), default_mode=0o400))],
        node_selector=node_selector(c),
        tolerations=tolerations(c),
        service_account_name=service_account_name(c),
        image_pull_secrets=[k.V1LocalObjectReference(name=n) for n in c.image_pull_secrets or []]
        or None,
        termination_grace_period_seconds=10,
    )


def spec_digest(template: k.V1PodTemplateSpec) -> str:
    """A digest of the pod template (to tell whether the running pods match the spec)."""
    data = k.ApiClient().sanitize_for_serialization(template)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def stateful_set(c: KubernetesCluster) -> k.V1StatefulSet:
    """The pods: ``num_nodes`` replicas started side by side, the first (``NAME-0``) the head."""
    name = c.short_name
    template = k.V1PodTemplateSpec(metadata=k.V1ObjectMeta(labels=labels(name)),
                                   spec=pod_spec(c))
    return k.V1StatefulSet(
        api_version="apps/v1", kind="StatefulSet",
        metadata=k.V1ObjectMeta(name=name, labels=labels(name),
                                annotations={SPEC_ANNOTATION: spec_digest(template)}),
        spec=k.V1StatefulSetSpec(
            replicas=c.num_nodes, service_name=name, pod_management_policy="Parallel",
            selector=k.V1LabelSelector(match_labels=labels(name)), template=template),
    )


def service(c: KubernetesCluster) -> k.V1Service:
    """A headless Service: stable DNS names for the pods (``NAME-0.NAME``), for Ray."""
    name = c.short_name
    return k.V1Service(
        api_version="v1", kind="Service",
        metadata=k.V1ObjectMeta(name=name, labels=labels(name)),
        spec=k.V1ServiceSpec(cluster_ip="None", selector=labels(name),
                             publish_not_ready_addresses=True,
                             ports=[k.V1ServicePort(name="rh-server", port=c.server_port)]),
    )


def token_secret(c: KubernetesCluster, token: str) -> k.V1Secret:
    """The server's owner token, mounted read-only into the pods (never in an env var)."""
    name = c.short_name
    return k.V1Secret(api_version="v1", kind="Secret",
                      metadata=k.V1ObjectMeta(name=token_secret_name(name), labels=labels(name)),
                      type="Opaque", string_data={"token": token})
