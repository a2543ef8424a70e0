"""Autostop of a Kubernetes cluster, the client's side: the agent in the head pod scales the
StatefulSet to 0 replicas when the server stops by its idle rule (``agent_kube.py``); a
StatefulSet at 0 replicas is a stopped cluster (rh itself never scales to 0: ``down``
deletes). This mixin of the provider tells a stopped cluster, brings it back (``up``, and the
next connection to its server), and applies a new ``autostop_mins`` to running servers."""

from __future__ import annotations

import json
import warnings

from rh_core.errors import ConnectionFailedError
from rh_core.progress import Steps
from rh_kubernetes import manifests, waiting


class Autostop:
    """Mixed into :class:`rh_kubernetes.provider.KubernetesProvider` (which gives ``kube``,
    ``cluster``, ``head``, ``autostop``, ``up``, ``_agent``, ``_read_pod`` and the lock
    ``_resuming``)."""

    def _send_settings(self, pod: str) -> dict:
        """Tell the agent of ``pod`` the autostop minutes (its server restarts with them)."""
        status, info = self._agent(pod, "POST", "/settings", timeout=120,
                                   body=json.dumps({"autostop_mins": self.autostop}).encode())
        if status != 200:
            raise ConnectionFailedError(f"setting autostop in pod {pod} failed: "
                                        f"{info.get('error') or info}")
        return info

    def _read_set(self):
        kube = self.kube
        return kube.call("get", "statefulsets.apps", kube.apps.read_namespaced_stateful_set,
                         self.cluster.short_name, kube.namespace, what=self.cluster.short_name,
                         missing_ok=True)

    def stopped(self) -> bool:
        """Whether the cluster is stopped: its StatefulSet is there with 0 replicas."""
        found = self._read_set()
        return found is not None and not found.metadata.deletion_timestamp and \
            found.spec.replicas == 0

    def resume_if_stopped(self) -> bool:
        """Bring a stopped cluster back (its StatefulSet scaled up, rh installed in the new
        pods); whether it was stopped."""
        with self._resuming:
            if not self.stopped():
                return False
            with Steps(self.cluster.short_name).step(
                    f"bringing back the cluster ({self._stopped_why()})"):
                self.up()
            return True

    def keep_warm(self, mins: float) -> None:
        """Apply the cluster's new ``autostop_mins`` to its running servers, when its pods run
        as an account that may scale the StatefulSet (else at the next ``up``)."""
        pod = self._read_pod(self.head)
        if pod is None or not waiting.is_ready(pod):
            return
        wanted = manifests.service_account_name(self.cluster)
        if (pod.spec.service_account_name or "default") != (wanted or "default"):
            warnings.warn(
                f"cluster {self.cluster.short_name!r} was made without autostop: its pods have "
                f"no permission to scale their StatefulSet. The new setting applies at the "
                f"next c.up(), which gives them rh's autostop service account and so replaces "
                f"them (served functions must be sent again)", stacklevel=3)
            return
        self._send_settings(self.head)

    def _stopped_why(self) -> str:
        if self.autostop:
            return (f"autostop scaled StatefulSet {self.cluster.short_name} to 0 replicas after "
                    f"{self.autostop:g} idle minutes")
        return f"StatefulSet {self.cluster.short_name} was scaled to 0 replicas"
