"""The stand-in's controllers and its one node: what the StatefulSet controller, the scheduler
and the kubelet would do with the objects of :mod:`standin.store`, in a loop.

- StatefulSet: pods ``NAME-0..replicas-1`` from its template (all at once), each checked
  against the namespace's ResourceQuota and for its service account (``FailedCreate`` event
  when it does not fit or the account does not exist); ``replicas`` lowered (through the
  ``scale`` subresource or a replace) stops and deletes the pods above it, raised makes them; a
  ``Failed`` (evicted) pod is deleted and made again; foreground deletion deletes the pods
  first, then the set.
- Scheduler: one node, ``standin-node``, with 4 CPUs, 16Gi and no GPUs, labels
  ``kubernetes.io/hostname`` and ``kubernetes.io/os``, no taints. A pod that does not fit, or
  whose nodeSelector does not match, is ``Unschedulable`` with the scheduler's message.
- Kubelet: images of :data:`standin.sandbox.IMAGES` are present; any other cannot be pulled
  (``ErrImagePull``, then ``ImagePullBackOff``). The container runs for real in its sandbox
  (:mod:`standin.sandbox`); exec readiness probes run there; a container that exits is
  restarted with a back-off (``CrashLoopBackOff`` from the second restart); a memory limit
  under 100Mi is ``OOMKilled`` as soon as the container starts (the stand-in's crude memory
  model). As in a real pod, the container gets ``KUBERNETES_SERVICE_HOST`` and
  ``KUBERNETES_SERVICE_PORT`` (the stand-in's address on the pods' bridge) and, at
  ``/var/run/secrets/kubernetes.io/serviceaccount``, a token of the pod's service account,
  ``ca.crt`` (the stand-in's certificate) and ``namespace``. The tests' controls add a
  node-pressure eviction and an OOM kill of a running pod.

Not modelled: other controllers, services' endpoints, DNS, cgroups (no CPU or memory is
actually limited), init containers, several containers per pod.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import time
from pathlib import Path

from standin import sandbox
from standin.store import Store, now, quantity

#: Where a pod finds its service account's token, as Kubernetes mounts it.
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE = {"name": "standin-node", "cpu": 4.0, "memory": 16 * 2**30, "nvidia.com/gpu": 0.0,
        "labels": {"kubernetes.io/hostname": "standin-node", "kubernetes.io/os": "linux"}}


class Kubelet:
    def __init__(self, store: Store, state: Path):
        self.store, self.state = store, state
        self.net = sandbox.Network(os.getpid() % 100000)
        self.pods: dict[str, dict] = {}  # uid -> runtime: ns, ip, proc, restarts, backoff...
        self._wake = asyncio.Event()
        #: Where pods reach the API (set by ``standin.main`` once it listens): host, port, and
        #: the certificate pods trust.
        self.api: tuple[str, int, Path] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception as e:  # noqa: BLE001 - a stand-in bug must show, not stop the loop
                print(f"standin kubelet: {type(e).__name__}: {e}", flush=True)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 0.2)
            except asyncio.TimeoutError:
                pass

    def tick(self) -> None:
        for ns in list(self.store.namespaces):
            for sts in list(self.store.objects(ns, "statefulsets").values()):
                self.reconcile(ns, sts)
            for pod in list(self.store.objects(ns, "pods").values()):
                self.kubelet(ns, pod)

    # ------------------------------------------------------------------ controller

    def reconcile(self, ns: str, sts: dict) -> None:
        name = sts["metadata"]["name"]
        mine = {p["metadata"]["name"]: p for p in self.store.objects(ns, "pods").values()
                if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid")
                == sts["metadata"]["uid"]}
        if sts["metadata"].get("deletionTimestamp"):
            for pod in mine.values():
                self.delete(ns, "pods", pod["metadata"]["name"], None)
            if not mine:
                self.store.remove(ns, "statefulsets", name)
            return
        replicas = sts["spec"].get("replicas", 1)
        for i in range(replicas):
            pod_name = f"{name}-{i}"
            pod = mine.get(pod_name)
            if pod is not None and pod["status"].get("phase") == "Failed" and \
                    time.monotonic() - self.pods[pod["metadata"]["uid"]]["failed"] > 1:
                self.delete(ns, "pods", pod_name, None)
                pod = None
            if pod is None and pod_name not in self.store.objects(ns, "pods"):
                self.create_pod(ns, sts, pod_name)
        for pod_name in mine:
            if int(pod_name.rsplit("-", 1)[1]) >= replicas:
                self.delete(ns, "pods", pod_name, None)
        ready = sum(1 for p in mine.values() if _ready(p))
        sts["status"] = {"replicas": len(mine), "readyReplicas": ready,
                         "observedGeneration": 1}

    def create_pod(self, ns: str, sts: dict, name: str) -> None:
        template = copy.deepcopy(sts["spec"]["template"])
        pod = {"metadata": {**template.get("metadata", {}), "name": name,
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                 "name": sts["metadata"]["name"],
                                                 "uid": sts["metadata"]["uid"],
                                                 "controller": True}]},
               "spec": {**template["spec"], "hostname": name},
               "status": {"phase": "Pending", "conditions": []}}
        refusal = self.store.quota_refusal(ns, pod)
        account = pod["spec"].get("serviceAccountName") or "default"
        if not refusal and account not in self.store.objects(ns, "serviceaccounts"):
            refusal = (f'pods "{name}" is forbidden: error looking up service account '
                       f'{ns}/{account}: serviceaccount "{account}" not found')
        if refusal:
            self.store.event(ns, sts, "FailedCreate",
                             f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed "
                             f"error: {refusal}", "Warning", "statefulset-controller")
            return
        pod = self.store.create(ns, "pods", pod)
        self.store.event(ns, sts, "SuccessfulCreate",
                         f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
                         component="statefulset-controller")
        self.pods[pod["metadata"]["uid"]] = {"ns": None, "proc": None, "restarts": 0,
                                             "next_start": 0.0, "failed": 0.0, "probe": 0.0,
                                             "pulls": 0}

    def delete(self, ns: str, resource: str, name: str, propagation: str | None) -> dict:
        if resource == "statefulsets":
            sts = self.store.get(ns, "statefulsets", name)
            sts["metadata"]["deletionTimestamp"] = now()
            if propagation == "Foreground":
                sts["metadata"]["finalizers"] = ["foregroundDeletion"]
            self.wake()
            return sts
        pod = self.store.remove(ns, "pods", name)
        rt = self.pods.pop(pod["metadata"]["uid"], None)
        if rt and rt["ns"]:
            grace = min(pod["spec"].get("terminationGracePeriodSeconds", 30), 5)
            self.net.remove(rt["ns"], rt["proc"].pid if rt["proc"] else None, grace)
        self.store.event(ns, pod, "Killing", "Stopping container rh")
        pod["metadata"]["deletionTimestamp"] = now()
        return pod

    # ------------------------------------------------------------------ scheduler and kubelet

    def kubelet(self, ns: str, pod: dict) -> None:
        rt = self.pods.get(pod["metadata"]["uid"])
        status = pod["status"]
        if rt is None or status.get("phase") == "Failed":
            return
        if not pod["spec"].get("nodeName") and not self.schedule(ns, pod):
            return
        c = pod["spec"]["containers"][0]
        if c["image"] not in sandbox.IMAGES:
            self.pull_failed(ns, pod, rt, c["image"])
            return
        proc = rt["proc"]
        if proc is not None and proc.poll() is not None:
            self.exited(ns, pod, rt, proc.returncode, "Error" if proc.returncode else "Completed")
        if rt["proc"] is None and time.monotonic() >= rt["next_start"]:
            self.start(ns, pod, rt, c)
        if rt["proc"] is not None and time.monotonic() >= rt["probe"]:
            probe = c.get("readinessProbe") or {}
            rt["probe"] = time.monotonic() + probe.get("periodSeconds", 10)
            ok = sandbox.probe(rt["ns"], probe["exec"]["command"], rt["env"],
                               probe.get("timeoutSeconds", 1)) if probe else True
            _set_ready(pod, ok)

    def schedule(self, ns: str, pod: dict) -> bool:
        spec = pod["spec"]
        res = spec["containers"][0].get("resources") or {}
        asked = {**(res.get("requests") or {}), **{k: v for k, v in (res.get("limits") or {}).items()
                                                   if k == "nvidia.com/gpu"}}
        short = [k for k, v in asked.items() if quantity(v) > NODE.get(k, 0.0)]
        selector = spec.get("nodeSelector") or {}
        mismatch = any(NODE["labels"].get(k) != v for k, v in selector.items())
        if short or mismatch:
            why = ", ".join(f"1 Insufficient {k}" for k in sorted(short)) if short else \
                "1 node(s) didn't match Pod's node affinity/selector"
            message = (f"0/1 nodes are available: {why}. preemption: 0/1 nodes are available: "
                       f"1 No preemption victims found for incoming pod.")
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                            "reason": "Unschedulable", "message": message,
                                            "lastTransitionTime": now()}]
            self.store.event(ns, pod, "FailedScheduling", message, "Warning", "default-scheduler")
            return False
        spec["nodeName"] = NODE["name"]
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                        "lastTransitionTime": now()}]
        self.store.event(ns, pod, "Scheduled", f"Successfully assigned {ns}/"
                         f"{pod['metadata']['name']} to {NODE['name']}", component="default-scheduler")
        return True

    def pull_failed(self, ns: str, pod: dict, rt: dict, image: str) -> None:
        rt["pulls"] += 1
        reason = "ErrImagePull" if rt["pulls"] < 3 else "ImagePullBackOff"
        if reason == "ErrImagePull":
            self.store.event(ns, pod, "Failed", f'Failed to pull image "{image}": rpc error: code '
                             f'= NotFound desc = failed to pull and unpack image "docker.io/'
                             f'{image}": not found', "Warning")
        else:
            self.store.event(ns, pod, "BackOff", f'Back-off pulling image "{image}"', "Warning")
        pod["status"]["containerStatuses"] = [_status(pod, {"waiting": {
            "reason": reason, "message": f'Back-off pulling image "{image}"'}}, 0)]

    def start(self, ns: str, pod: dict, rt: dict, c: dict) -> None:
        uid = pod["metadata"]["uid"]
        d = self.state / "pods" / uid
        if rt["ns"] is None:
            rt["ns"], pod["status"]["podIP"] = self.net.add(uid)
            d.mkdir(parents=True)
            self.store.event(ns, pod, "Pulled", f'Container image "{c["image"]}" already present '
                                                f"on machine")
        rt["env"] = self.env(ns, pod, c)
        mounts = self.volumes(ns, pod, c, d)
        mounts[SA_MOUNT] = self.service_account(ns, pod, d)
        if rt["proc"] is None and (d / "log").exists():
            (d / "log").replace(d / "log.previous")
        rt["proc"] = sandbox.start(rt["ns"], c["command"] + c.get("args", []), rt["env"],
                                   mounts, d / "log")
        rt["probe"] = time.monotonic() + 0.3
        self.store.event(ns, pod, "Started", "Started container rh")
        pod["status"].update(phase="Running", startTime=pod["status"].get("startTime") or now())
        last = (pod["status"].get("containerStatuses") or [{}])[0].get("lastState") or {}
        pod["status"]["containerStatuses"] = [_status(pod, {"running": {"startedAt": now()}},
                                                      rt["restarts"], last)]
        _set_ready(pod, False)
        memory = (c.get("resources") or {}).get("limits", {}).get("memory")
        if memory and quantity(memory) < 100 * 2**20:
            self.oom_kill(ns, pod["metadata"]["name"])

    def exited(self, ns: str, pod: dict, rt: dict, code: int, reason: str) -> None:
        sandbox.kill_all(rt["ns"])  # what the container left behind goes with it
        rt["proc"] = None
        rt["restarts"] += 1
        back_off = min(0.5 * 2 ** (rt["restarts"] - 1), 5.0)
        rt["next_start"] = time.monotonic() + back_off
        last = {"terminated": {"exitCode": code, "reason": reason, "finishedAt": now()}}
        waiting = {"reason": "CrashLoopBackOff" if rt["restarts"] >= 2 else "",
                   "message": f"back-off {back_off:g}s restarting failed container=rh pod="
                              f"{pod['metadata']['name']}"}
        pod["status"]["containerStatuses"] = [_status(pod, {"waiting": waiting}, rt["restarts"],
                                                      last)]
        _set_ready(pod, False)
        if rt["restarts"] >= 2:
            self.store.event(ns, pod, "BackOff", "Back-off restarting failed container rh in "
                                                 f"pod {pod['metadata']['name']}", "Warning")

    def service_account(self, ns: str, pod: dict, d: Path) -> Path:
        """The folder mounted at :data:`SA_MOUNT`: a token of the pod's service account (made
        once per pod), the API's certificate and the namespace."""
        folder = d / "serviceaccount"
        if not folder.exists():
            folder.mkdir(parents=True)
            account = pod["spec"].get("serviceAccountName") or "default"
            (folder / "token").write_text(self.store.issue_token(ns, account))
            (folder / "ca.crt").write_bytes(self.api[2].read_bytes())
            (folder / "namespace").write_text(ns)
            for f in folder.iterdir():
                f.chmod(0o444)
        return folder

    def env(self, ns: str, pod: dict, c: dict) -> dict[str, str]:
        env = {"PATH": sandbox.image_path(self.state, c["image"]),
               "HOSTNAME": pod["metadata"]["name"], "HOME": "/mnt/home",
               "KUBERNETES_SERVICE_HOST": self.api[0], "KUBERNETES_SERVICE_PORT": str(self.api[1])}
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
            env[e["name"]] = {"status.podIP": pod["status"].get("podIP", ""),
                              "metadata.name": pod["metadata"]["name"],
                              "metadata.namespace": ns,
                              "spec.serviceAccountName":
                                  pod["spec"].get("serviceAccountName") or "default",
                              }.get(ref, "") if ref \
                else e.get("value", "")
        return env

    def volumes(self, ns: str, pod: dict, c: dict, d: Path) -> dict[str, Path]:
        by_name = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = {}
        for m in c.get("volumeMounts") or []:
            if not m["mountPath"].startswith("/mnt/"):
                raise RuntimeError(f"the stand-in mounts volumes under /mnt only, not "
                                   f"{m['mountPath']}")
            vol, folder = by_name[m["name"]], d / "volumes" / m["name"]
            if not folder.exists():
                folder.mkdir(parents=True)
                if "secret" in vol:
                    secret = self.store.get(ns, "secrets", vol["secret"]["secretName"])
                    for key, value in (secret.get("data") or {}).items():
                        (folder / key).write_bytes(base64.b64decode(value))
                        (folder / key).chmod(vol["secret"].get("defaultMode", 0o644))
            mounts[m["mountPath"]] = folder
        return mounts

    # ------------------------------------------------------------------ the tests' controls

    def evict(self, ns: str, name: str, message: str) -> None:
        """What the kubelet does under node pressure: the pod's processes stopped, the pod
        ``Failed`` with reason ``Evicted``; the StatefulSet makes it again a second later."""
        pod = self.store.get(ns, "pods", name)
        rt = self.pods[pod["metadata"]["uid"]]
        self.store.event(ns, pod, "Evicted", message, "Warning")
        if rt["ns"]:
            sandbox.stop(rt["ns"], rt["proc"].pid if rt["proc"] else None, 5)
        rt["proc"], rt["failed"] = None, time.monotonic()
        pod["status"].update(phase="Failed", reason="Evicted", message=message)
        _set_ready(pod, False)

    def oom_kill(self, ns: str, name: str) -> None:
        """The container killed for memory (exit code 137, ``OOMKilled``), then restarted."""
        pod = self.store.get(ns, "pods", name)
        rt = self.pods[pod["metadata"]["uid"]]
        if rt["proc"] is not None:
            # The kernel's OOM killer: SIGKILL, no grace. The main process first: just started,
            # it may not have entered the pod's namespace yet, where kill_all looks.
            rt["proc"].kill()
            rt["proc"].wait()
            sandbox.kill_all(rt["ns"])
            self.exited(ns, pod, rt, 137, "OOMKilled")

    def log(self, ns: str, name: str, previous: bool, tail: str | None) -> str | None:
        pod = self.store.get(ns, "pods", name)
        f = self.state / "pods" / pod["metadata"]["uid"] / ("log.previous" if previous else "log")
        if not f.exists():
            return None if previous else ""
        lines = f.read_text(errors="replace").splitlines(keepends=True)
        return "".join(lines[-int(tail):] if tail else lines)

    async def connect(self, ns: str, name: str, port: int):
        pod = self.store.get(ns, "pods", name)
        rt = self.pods.get(pod["metadata"]["uid"])
        if rt is None or rt["ns"] is None:
            raise ConnectionRefusedError("the pod has no sandbox")
        sock = await asyncio.to_thread(sandbox.connect, rt["ns"], port)
        return await asyncio.open_connection(sock=sock)

    def close(self) -> None:
        for rt in self.pods.values():
            if rt["ns"]:
                self.net.remove(rt["ns"], rt["proc"].pid if rt["proc"] else None, 2)
        self.net.close()


def _status(pod: dict, state: dict, restarts: int, last: dict | None = None) -> dict:
    c = pod["spec"]["containers"][0]
    return {"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
            "restartCount": restarts, "started": "running" in state, "state": state,
            "lastState": last or {}}


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions") or [])


def _set_ready(pod: dict, ok: bool) -> None:
    conds = [c for c in pod["status"].get("conditions") or [] if c["type"] != "Ready"]
    conds.append({"type": "Ready", "status": "True" if ok else "False",
                  "lastTransitionTime": now()})
    pod["status"]["conditions"] = conds
    for s in pod["status"].get("containerStatuses") or []:
        s["ready"] = ok
