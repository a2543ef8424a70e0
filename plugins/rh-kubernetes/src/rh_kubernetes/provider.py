"""The ``kubernetes`` compute provider: the cluster's objects created (or found) in its
namespace, its pods waited for, rh's wheels installed in each pod through its agent, the
server's readiness awaited; ``down`` deletes what rh created, by label. Autostop, a stopped
cluster and bringing it back: :mod:`rh_kubernetes.autostop`."""

from __future__ import annotations

import sys
import sysconfig
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from rh_core import wheelhouse
from rh_core.errors import ConfigError, ConnectionFailedError, PackageInstallError
from rh_core.paths import rh_home
from rh_core.plugin.interfaces import ComputeProvider, Endpoint
from rh_core.progress import Steps
from rh_core.transport import tokens
from rh_kubernetes import codesync, manifests, ray_pods, waiting
from rh_kubernetes.autostop import Autostop
from rh_kubernetes.cluster import KubernetesCluster, kubernetes_cluster
from rh_kubernetes.portforward import exchange

if TYPE_CHECKING:  # the kubernetes client loads when a cluster first talks to its API
    from rh_kubernetes.api import Kube

#: How long pods may take to run (pulling a large image counts) and the server to be ready.
LAUNCH_TIMEOUT = 900
READY_TIMEOUT = 300
#: How long a new connection waits for a restarting container's server.
RECONNECT_WAIT = 120


class KubernetesProvider(Autostop, ComputeProvider):
    """Pods of a StatefulSet, each running the agent and the rh server on its loopback."""

    name = "kubernetes"
    cluster_class = KubernetesCluster
    factory = staticmethod(kubernetes_cluster)

    def __init__(self, cluster: KubernetesCluster):
        super().__init__(cluster)
        self._kube: Kube | None = None
        #: Pod name -> (uid, restart count) when this process last brought the pods up.
        self.seen: dict[str, tuple[str, int]] = {}
        #: Held while a stopped cluster is brought back (connections arrive side by side).
        self._resuming = threading.Lock()

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            from rh_kubernetes.api import Kube  # loads the kubernetes client (0.4 s)

            self._kube = Kube(self.cluster.context, self.cluster.namespace)
        return self._kube

    @property
    def head(self) -> str:
        return f"{self.cluster.short_name}-0"

    @property
    def extras(self) -> str:
        return "server,ray" if self.cluster.num_nodes > 1 else "server"

    def token(self) -> str:
        c = self.cluster
        return tokens.cluster_token(f"kubernetes:{self.kube.context}:{c.namespace}:{c.short_name}")

    @property
    def autostop(self) -> float:
        """The idle minutes the servers stop after (0: never)."""
        mins = self.cluster.autostop_mins
        return mins if mins is not None and mins > 0 else 0

    def each(self, fn, items: list) -> list:
        if not items:
            return []
        if len(items) == 1:
            return [fn(items[0])]
        with ThreadPoolExecutor(len(items)) as pool:
            return list(pool.map(fn, items))

    # ------------------------------------------------------------------ bring-up

    def up(self) -> Endpoint:
        """Create the cluster's objects (or find them), wait for its pods, install rh in each
        pod that lacks this version, wait until every server is ready. Idempotent."""
        c = self.cluster
        steps = Steps(c.short_name)
        kube = self.kube
        with steps.step(f"applying StatefulSet {c.short_name} in namespace {c.namespace} "
                        f"(context {kube.context})") as s:
            s["note"] = self._apply()
        watcher = waiting.Watcher(kube, c)
        pods = watcher.wait(ready=False, timeout=LAUNCH_TIMEOUT, what="start running")
        infos = self.each(lambda pod: self._agent_info(pod, watcher), pods)
        _, key = wheelhouse.source_and_key(self.extras)
        stale = [p.metadata.name for p, i in zip(pods, infos, strict=True)
                 if (i.get("key") or "").split("\n")[0] != key or i.get("state") != "running"]
        if stale:
            self._check_python(infos[0])
            with steps.step("building the wheelhouse (cached)") as s:
                folder, key = wheelhouse.build(log=lambda _: None, extras=self.extras)
                s["note"] = f"{len(list(folder.glob('*.whl')))} wheels"
            tar = _wheel_tar(folder, key)
            with steps.step(f"installing rh in pod{'s' if len(stale) > 1 else ''} "
                            f"{', '.join(stale)}"):
                self.each(lambda pod: self._install(pod, tar, key), stale)
        settled = [p.metadata.name for p, i in zip(pods, infos, strict=True)
                   if p.metadata.name not in stale and (i.get("autostop_mins") or 0) !=
                   self.autostop]
        self.each(self._send_settings, settled)
        if len(pods) > 1:
            with steps.step(f"Ray across the {len(pods)} pods") as s:
                s["note"] = ray_pods.start(self, [p.metadata.name for p in pods])
        with steps.step("waiting for the server's readiness probe"):
            pods = watcher.wait(ready=True, timeout=READY_TIMEOUT, what="become ready")
        self.seen = {p.metadata.name: (p.metadata.uid, _restarts(p)) for p in pods}
        return Endpoint("127.0.0.1", c.server_port, self.token())

    def _apply(self) -> str:
        """Create the Secret, Service and StatefulSet, or bring existing ones in line."""
        kube, c, ns = self.kube, self.cluster, self.cluster.namespace
        name = c.short_name
        secret = manifests.token_secret(c, self.token())
        if kube.call("create", "secrets", kube.core.create_namespaced_secret, ns, secret,
                     what=secret.metadata.name, conflict_ok=True) is None:
            kube.call("update", "secrets", kube.core.replace_namespaced_secret,
                      secret.metadata.name, ns, secret, what=secret.metadata.name)
        kube.call("create", "services", kube.core.create_namespaced_service, ns,
                  manifests.service(c), what=name, conflict_ok=True)
        if c.autostop_mins is not None:
            kube.call("create", "configmaps", kube.core.create_namespaced_config_map, ns,
                      manifests.state_map(c), what=manifests.state_map_name(name),
                      conflict_ok=True)
        if manifests.makes_autostop_account(c):
            sa, role, binding = manifests.autostop_rbac(c)
            kube.call("create", "serviceaccounts", kube.core.create_namespaced_service_account,
                      ns, sa, what=sa.metadata.name, conflict_ok=True)
            kube.call("create", "roles.rbac.authorization.k8s.io", kube.rbac.create_namespaced_role,
                      ns, role, what=role.metadata.name, conflict_ok=True)
            kube.call("create", "rolebindings.rbac.authorization.k8s.io",
                      kube.rbac.create_namespaced_role_binding, ns, binding,
                      what=binding.metadata.name, conflict_ok=True)
        wanted = manifests.stateful_set(c)
        for _ in range(240):
            found = kube.call("get", "statefulsets.apps", kube.apps.read_namespaced_stateful_set,
                              name, ns, what=name, missing_ok=True)
            if found is None or not found.metadata.deletion_timestamp:
                break
            time.sleep(0.5)  # an earlier down() is still deleting it
        if found is None:
            kube.call("create", "statefulsets.apps", kube.apps.create_namespaced_stateful_set,
                      ns, wanted, what=name)
            return "created"
        if found.spec.replicas == 0:
            # Stopped (by autostop): the old pod may still be terminating; a new one with its
            # name is made only once it is gone.
            self._wait_no_pods(120)
        digest = (found.metadata.annotations or {}).get(manifests.SPEC_ANNOTATION)
        if digest != wanted.metadata.annotations[manifests.SPEC_ANNOTATION] or \
                found.spec.replicas != c.num_nodes:
            wanted.metadata.resource_version = found.metadata.resource_version
            kube.call("update", "statefulsets.apps", kube.apps.replace_namespaced_stateful_set,
                      name, ns, wanted, what=name)
            return "updated"
        return "found"

    def _wait_no_pods(self, timeout: float) -> None:
        kube, sel = self.kube, manifests.selector(self.cluster.short_name)
        deadline = time.monotonic() + timeout
        while kube.call("list", "pods", kube.core.list_namespaced_pod, self.cluster.namespace,
                        label_selector=sel).items and time.monotonic() < deadline:
            time.sleep(0.25)

    def _agent(self, pod: str, method: str, path: str, **kw) -> tuple[int, dict]:
        return exchange(self.kube, pod, manifests.AGENT_PORT, method, path, self.token(), **kw)

    def _agent_info(self, pod, watcher: waiting.Watcher) -> dict:
        """What the agent of ``pod`` says (it may take a moment to listen after the pod runs;
        meanwhile a container that crashes is reported as such)."""
        name = pod.metadata.name
        deadline = time.monotonic() + 60
        while True:
            try:
                status, info = self._agent(name, "GET", "/agent", timeout=30)
            except ConnectionError as e:
                pods = watcher.pods()
                watcher.check(pods, watcher.show(pods))
                if time.monotonic() > deadline:
                    raise ConnectionFailedError(f"the agent of pod {name} does not answer: {e}. "
                                                f"Its log: kubectl logs {name} -n "
                                                f"{self.cluster.namespace}") from None
                time.sleep(0.25)
                continue
            if status != 200:
                raise ConnectionFailedError(f"the agent of pod {name} answered {status}: {info}")
            return info

    def _check_python(self, info: dict) -> None:
        here = (f"{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_platform())
        there = (info.get("python"), info.get("platform"))
        if here != there:
            raise ConfigError(
                f"the image {self.cluster.image!r} has Python {there[0]} on {there[1]}, but rh's "
                f"wheels are built here for Python {here[0]} on {here[1]}: use an image with "
                f"Python {here[0]} (e.g. python:{here[0]}-slim), or run rh from a machine "
                f"matching the image")

    def _install(self, pod: str, tar, key: str) -> None:
        with open(tar, "rb") as f:
            status, info = self._agent(
                pod, "PUT", f"/wheelhouse?key={key}&extras={self.extras}"
                f"&autostop={self.autostop:g}", body=f, length=tar.stat().st_size, timeout=900)
        if status != 200:
            raise PackageInstallError(f"installing rh in pod {pod} failed: "
                                      f"{info.get('error') or info}")

    # ------------------------------------------------------------------ running cluster

    def _read_pod(self, name: str):
        kube = self.kube
        return kube.call("get", "pods", kube.core.read_namespaced_pod, name, kube.namespace,
                         what=name, missing_ok=True)

    def endpoint(self) -> Endpoint | None:
        """The server's endpoint when the head pod runs and is ready; None otherwise."""
        pod = self._read_pod(self.head)
        if pod is None or not waiting.is_ready(pod):
            return None
        return Endpoint("127.0.0.1", self.cluster.server_port, self.token())

    def open_server_stream(self):
        """A port-forward stream to the head pod's server, for one client connection: waits
        while the pod's container restarts; a replaced pod (without its server until brought
        up again) or one that does not come back raises, saying why."""
        deadline = time.monotonic() + RECONNECT_WAIT
        while True:
            pod = self._read_pod(self.head)
            if (pod is None or not waiting.is_ready(pod)) and self.resume_if_stopped():
                pod = self._read_pod(self.head)
            if pod is not None and waiting.is_ready(pod):
                return self.kube.portforward(self.head, self.cluster.server_port)
            replaced = pod is None or (self.head in self.seen and
                                       pod.metadata.uid != self.seen[self.head][0])
            if replaced or time.monotonic() > deadline:
                raise ConnectionFailedError(self.explain() or f"pod {self.head} is not ready")
            time.sleep(0.25)

    def explain(self) -> str | None:
        """Why the head pod's server went away: evicted, replaced, its container killed or
        restarted; with what to do. None when nothing is known."""
        head, ns = self.head, self.cluster.namespace
        pod = self._read_pod(head)
        events = self.kube.call("list", "events", self.kube.core.list_namespaced_event, ns,
                                field_selector=f"involvedObject.name={head}").items
        said = [e for e in events if e.reason in ("Evicted", "Preempted", "Preempting",
                                                   "OOMKilling", "Killing")]
        said.sort(key=lambda e: waiting._when(e) or 0)
        again = "bring the cluster up again with c.up() (and send your functions with .to())"
        if pod is None and self.stopped():
            return (f"the cluster stopped by autostop as the request came "
                    f"({self._stopped_why()}); the next call brings it back")
        if pod is not None and pod.status.reason == "Evicted":
            return f"pod {head} was evicted: {pod.status.message}; {again}"
        if pod is None or (head in self.seen and pod.metadata.uid != self.seen[head][0]):
            why = f" ({said[-1].reason}: {said[-1].message})" if said else ""
            return f"pod {head} was {'deleted' if pod is None else 'replaced'}{why}; {again}"
        s = waiting.container_status(pod)
        if s is not None and head in self.seen and s.restart_count > self.seen[head][1]:
            term = s.last_state.terminated if s.last_state else None
            how = f"{term.reason}, exit code {term.exit_code}" if term else "it exited"
            extra = (f": it used more memory than its limit (memory={self.cluster.memory})"
                     if term is not None and term.reason == "OOMKilled" else "")
            return (f"the container of pod {head} was restarted ({how}){extra}; served "
                    f"functions come back, calls that were running are lost")
        return None

    def down(self) -> None:
        """Delete what rh created for the cluster (by its labels; foreground propagation, so
        the pods go first) and wait until its pods are gone. Idempotent."""
        kube, ns, name = self.kube, self.cluster.namespace, self.cluster.short_name
        sel = manifests.selector(name)
        steps = Steps(name)
        with steps.step(f"deleting the cluster's objects in namespace {ns}"):
            for verb_list, delete, resource in (
                    (kube.apps.list_namespaced_stateful_set,
                     kube.apps.delete_namespaced_stateful_set, "statefulsets.apps"),
                    (kube.core.list_namespaced_service, kube.core.delete_namespaced_service,
                     "services"),
                    (kube.core.list_namespaced_secret, kube.core.delete_namespaced_secret,
                     "secrets"),
                    (kube.core.list_namespaced_config_map,
                     kube.core.delete_namespaced_config_map, "configmaps"),
                    (kube.rbac.list_namespaced_role_binding,
                     kube.rbac.delete_namespaced_role_binding,
                     "rolebindings.rbac.authorization.k8s.io"),
                    (kube.rbac.list_namespaced_role, kube.rbac.delete_namespaced_role,
                     "roles.rbac.authorization.k8s.io"),
                    (kube.core.list_namespaced_service_account,
                     kube.core.delete_namespaced_service_account, "serviceaccounts")):
                for obj in kube.call("list", resource, verb_list, ns, label_selector=sel).items:
                    kube.call("delete", resource, delete, obj.metadata.name, ns,
                              propagation_policy="Foreground", what=obj.metadata.name,
                              missing_ok=True)
        deadline = time.monotonic() + 120
        while kube.call("list", "pods", kube.core.list_namespaced_pod, ns,
                        label_selector=sel).items and time.monotonic() < deadline:
            time.sleep(0.25)
        self.seen = {}

    def restart_server(self) -> Endpoint:
        """A new server process in every pod (the pods and their files stay)."""
        pods = [p.metadata.name for p in waiting.Watcher(self.kube, self.cluster).pods()]
        for pod in pods:
            status, info = self._agent(pod, "POST", "/restart", timeout=60)
            if status != 200:
                raise ConnectionFailedError(f"restarting the server in pod {pod} failed: {info}")
        return self.up()

    def server_log(self) -> str:
        """The head pod's log: the agent's lines and the server's own log; for a stopped
        cluster, a line saying so."""
        kube = self.kube
        text = kube.call("read", "pods/log", kube.core.read_namespaced_pod_log, self.head,
                         kube.namespace, container=manifests.CONTAINER, missing_ok=True)
        if text is None and self.stopped():
            return (f"cluster {self.cluster.short_name!r} is stopped: {self._stopped_why()}; "
                    f"its pods and their logs are gone. c.up() brings it back.\n")
        return text or ""

    def nodes(self) -> list[str]:
        """The pods' addresses, head first."""
        return [p.status.pod_ip for p in waiting.Watcher(self.kube, self.cluster).pods()]

    def describe(self) -> dict:
        """Namespace, context, replicas, autostop (minutes or None; ``stopped``: why the
        cluster has no pods, or None; ``autostop_error``: why the head pod could not stop it,
        or None) and the pods: name, phase, ready, node, restarts."""
        found = self._read_set()
        pods = waiting.Watcher(self.kube, self.cluster).pods()
        replicas = found.spec.replicas if found is not None else None
        stopped = self._stopped_why() if replicas == 0 and not \
            found.metadata.deletion_timestamp else None
        error = None
        head = next((p for p in pods if p.metadata.name == self.head), None)
        # The agent answers while its server restarts (the pod is then not ready).
        if self.autostop and head is not None and head.status.phase == "Running":
            try:
                error = self._agent(self.head, "GET", "/agent", timeout=30)[1].get(
                    "autostop_error")
            except Exception as e:  # noqa: BLE001 - the status is worth having without it
                error = f"the agent of pod {self.head} did not say ({e})"
        return {"namespace": self.cluster.namespace, "context": self.kube.context,
                "replicas": replicas, "autostop_mins": self.autostop or None,
                "stopped": stopped, "autostop_error": error,
                "pods": [{"name": p.metadata.name, "phase": p.status.phase,
                          "ready": waiting.is_ready(p), "node": p.spec.node_name,
                          "restarts": _restarts(p)} for p in pods]}

    def sync_code(self, local_root: str) -> str:
        """Copy the code root into every pod (see :mod:`rh_kubernetes.codesync`), bringing the
        cluster up first when it is not (``.to()`` syncs before it first calls the server), or
        back when it was stopped."""
        self.cluster.up_if_not()
        self.resume_if_stopped()
        return codesync.sync_code(self, local_root)


def _restarts(pod) -> int:
    s = waiting.container_status(pod)
    return s.restart_count if s is not None else 0


def _wheel_tar(folder, key: str):
    """The wheelhouse as one tar (made once per key), as the agent takes it."""
    tar = rh_home() / "wheelhouse" / f"{key}.tar"
    if not tar.exists():
        tmp = tar.with_suffix(".tar.tmp")
        with tarfile.open(tmp, "w") as t:
            for whl in sorted(folder.glob("*.whl")):
                t.add(whl, arcname=whl.name)
        tmp.replace(tar)
    return tar
