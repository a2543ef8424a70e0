"""Waiting for a cluster's pods: their phase and events shown as they change, and the states
that will not get better on their own (unschedulable, an image that cannot be pulled, a crash
loop, a container killed for memory, an eviction, a quota) raised as errors carrying the pod's
own words."""

from __future__ import annotations

import datetime
import sys
import time

from rh_core.progress import quiet
from rh_kubernetes import manifests
from rh_kubernetes.errors import ForbiddenError, PodStartError, QuotaExceededError

#: Waiting reasons of a container that only get worse.
PULL_FAILED = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_FAILED = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")


class Watcher:
    """Shows what the pods of ``cluster`` do (one line per change and per new event), and
    tells whether one of them is stuck for good."""

    def __init__(self, kube, cluster):
        self.kube, self.cluster = kube, cluster
        self.name = cluster.short_name
        self.started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
        self.shown: set[tuple] = set()
        self.phases: dict[str, str] = {}

    def say(self, text: str) -> None:
        if not quiet():
            print(f"rh {self.name}: {text}", file=sys.stderr, flush=True)

    def pods(self) -> list:
        items = self.kube.call("list", "pods", self.kube.core.list_namespaced_pod,
                               self.kube.namespace,
                               label_selector=manifests.selector(self.name)).items
        return sorted((p for p in items if not p.metadata.deletion_timestamp),
                      key=lambda p: _ordinal(p.metadata.name))

    def events(self, obj: str) -> list:
        """Events about ``obj`` (a pod or the StatefulSet) since the wait began, oldest first."""
        items = self.kube.call("list", "events", self.kube.core.list_namespaced_event,
                               self.kube.namespace,
                               field_selector=f"involvedObject.name={obj}").items
        fresh = [e for e in items if (_when(e) or self.started) >= self.started]
        return sorted(fresh, key=lambda e: _when(e) or self.started)

    def show(self, pods: list) -> dict[str, list]:
        """Print phase changes and new events; the events of each pod (and the set's)."""
        seen: dict[str, list] = {self.name: self.events(self.name)}
        for pod in pods:
            # This pod's own: not those of an earlier pod of the same name (a cluster back from
            # autostop, a pod made again after an eviction).
            seen[pod.metadata.name] = [e for e in self.events(pod.metadata.name)
                                       if e.involved_object.uid in (None, pod.metadata.uid)]
            state = describe_state(pod)
            if self.phases.get(pod.metadata.name) != state:
                self.phases[pod.metadata.name] = state
                self.say(f"pod {pod.metadata.name}: {state}")
        for obj, events in seen.items():
            for e in events:
                key = (e.metadata.uid, e.count, e.message)
                if key not in self.shown:
                    self.shown.add(key)
                    what = "statefulset" if obj == self.name else "pod"
                    self.say(f"{what} {obj}: {e.reason}: {e.message}")
        return seen

    def check(self, pods: list, events: dict[str, list]) -> None:
        """Raise for a pod (or the StatefulSet) that will not start by itself."""
        for e in events.get(self.name, []):
            if e.reason == "FailedCreate" and len(pods) < self.cluster.num_nodes:
                if "exceeded quota" in (e.message or ""):
                    raise QuotaExceededError(
                        f"the StatefulSet {self.name} cannot create its pods: {e.message}. Ask "
                        f"for less (cpus, memory, gpus, num_nodes), bring other clusters down, "
                        f"or have the namespace's quota raised.")
                if "forbidden" in (e.message or "").lower():
                    raise ForbiddenError(f"the StatefulSet {self.name} cannot create its pods: "
                                         f"{e.message}")
        for pod in pods:
            trouble = pod_trouble(pod, events.get(pod.metadata.name, []), self.cluster)
            if trouble:
                if "CrashLoopBackOff" in trouble or "exited" in trouble:
                    trouble += self.previous_log(pod.metadata.name)
                raise PodStartError(trouble)

    def previous_log(self, pod: str) -> str:
        text = self.kube.call("read", "pods/log", self.kube.core.read_namespaced_pod_log, pod,
                              self.kube.namespace, container=manifests.CONTAINER, previous=True,
                              tail_lines=20, missing_ok=True)
        return f"\nThe end of its last run's log:\n{text.rstrip()}" if text else ""

    def wait(self, ready: bool, timeout: float, what: str) -> list:
        """Wait until the cluster's ``num_nodes`` pods run (``ready``: and pass their
        readiness probe, the server's health); return them, head first."""
        deadline = time.monotonic() + timeout
        pods: list = []
        while time.monotonic() < deadline:
            pods = self.pods()
            events = self.show(pods)
            self.check(pods, events)
            if len(pods) == self.cluster.num_nodes and all(
                    is_ready(p) if ready else p.status.phase == "Running" for p in pods):
                return pods
            time.sleep(0.25)
        states = "; ".join(f"{p.metadata.name}: {describe_state(p)}" for p in pods) or "no pods"
        raise PodStartError(f"the pods of cluster {self.name!r} did not {what} within "
                            f"{timeout:.0f} s ({states}). `kubectl describe pod -l "
                            f"{manifests.CLUSTER_LABEL}={self.name} -n {self.kube.namespace}` "
                            f"tells more.")


def _ordinal(pod_name: str) -> int:
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _when(event):
    return event.last_timestamp or event.event_time or event.first_timestamp


def is_ready(pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def container_status(pod):
    for s in pod.status.container_statuses or []:
        if s.name == manifests.CONTAINER:
            return s
    return None


def describe_state(pod) -> str:
    """The pod's phase and, when it says more, its container's state ("Pending
    (ContainerCreating)", "Running, ready")."""
    phase = pod.status.phase or "Pending"
    s = container_status(pod)
    if pod.status.reason:
        return f"{phase} ({pod.status.reason})"
    if s and s.state and s.state.waiting and s.state.waiting.reason:
        return f"{phase} ({s.state.waiting.reason})"
    if phase == "Running":
        return "Running, ready" if is_ready(pod) else "Running, not ready yet"
    for c in pod.status.conditions or []:
        if c.type == "PodScheduled" and c.status == "False" and c.reason:
            return f"{phase} ({c.reason})"
    return phase


def pod_trouble(pod, events: list, cluster) -> str | None:
    """What keeps ``pod`` from starting for good, as a sentence with what to do; None when it
    may still start."""
    name = pod.metadata.name
    if pod.status.phase == "Failed":
        return None  # an evicted or failed pod: its StatefulSet makes it again
    for c in pod.status.conditions or []:
        if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
            if any(e.reason == "TriggeredScaleUp" for e in events):
                return None  # the cluster autoscaler is adding a node for it
            asked = ", ".join(f"{k}={v}" for k, v in (("cpus", cluster.cpus),
                                                      ("memory", cluster.memory),
                                                      ("gpus", cluster.gpus)) if v)
            return (f"pod {name} cannot be scheduled: {c.message}. No node has room for what "
                    f"it asks ({asked}) with its node_selector and tolerations: ask for less, "
                    f"or check them against your nodes (kubectl describe nodes).")
    s = container_status(pod)
    if s is None:
        return None
    waiting = s.state.waiting if s.state else None
    if waiting and waiting.reason in PULL_FAILED:
        said = [e.message for e in events if e.reason == "Failed" and e.message]
        return (f"pod {name} cannot pull its image {cluster.image!r} ({waiting.reason}): "
                f"{said[-1] if said else waiting.message or ''}. Check the image's name and tag, "
                f"and for a private registry give image_pull_secrets=.")
    if waiting and waiting.reason in CONFIG_FAILED:
        return f"pod {name} cannot start its container ({waiting.reason}): {waiting.message}"
    last = s.last_state.terminated if s.last_state else None
    now = s.state.terminated if s.state else None
    for term in (now, last):
        if term is not None and term.reason == "OOMKilled":
            return (f"the container of pod {name} was killed for using more memory than its "
                    f"limit (OOMKilled, memory={cluster.memory}): give the cluster more memory=")
    if waiting and waiting.reason == "CrashLoopBackOff":
        how = f"exit code {last.exit_code}, {last.reason}" if last else "it keeps exiting"
        return (f"the container of pod {name} keeps crashing (CrashLoopBackOff, {how}): "
                f"{waiting.message or ''}".rstrip(": ") + ". Check that the image has python3.")
    return None
