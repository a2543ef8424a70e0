"""The cluster's way to the Kubernetes API: the kubeconfig (or the pod's service account)
loaded with the official client, the API objects, and every call's refusal turned into an error
that says what was refused and what to do (:func:`rh_kubernetes.errors.api_error`)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from kubernetes import client as k
from kubernetes import config as kconfig
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import portforward

from rh_kubernetes.errors import KubeConfigError, api_error

IN_CLUSTER = "in-cluster"


def kubeconfig_files() -> list[str]:
    """The kubeconfig files to read, as ``kubectl`` reads them: ``$KUBECONFIG`` (a list joined
    by ':'), else ``~/.kube/config``; only the ones that exist."""
    env = os.environ.get("KUBECONFIG")
    paths = [p for p in env.split(os.pathsep) if p] if env else ["~/.kube/config"]
    return [p for p in paths if Path(p).expanduser().is_file()]


def load_configuration(context: str | None) -> tuple[k.Configuration, str]:
    """``(client configuration, context name)`` for ``context`` (None: the current one; in a
    pod without a kubeconfig, its service account as ``"in-cluster"``)."""
    files = kubeconfig_files()
    cfg = k.Configuration()
    if not files:
        if context in (None, IN_CLUSTER) and os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                kconfig.load_incluster_config(client_configuration=cfg)
            except ConfigException as e:
                raise KubeConfigError(f"running inside a pod, but its service account cannot "
                                      f"be used: {e}") from None
            return cfg, IN_CLUSTER
        where = (f"KUBECONFIG={os.environ['KUBECONFIG']!r} names no file that exists"
                 if os.environ.get("KUBECONFIG") else
                 "KUBECONFIG is not set and ~/.kube/config does not exist")
        raise KubeConfigError(
            f"no kubeconfig: {where}, and this process does not run inside a Kubernetes pod. "
            f"Point KUBECONFIG at your cluster's kubeconfig (`kubectl config view` shows it when "
            f"it is right), or run where ~/.kube/config is.")
    joined = os.pathsep.join(files)
    try:
        contexts, current = kconfig.list_kube_config_contexts(config_file=joined)
    except ConfigException as e:
        raise KubeConfigError(f"the kubeconfig {joined} cannot be read: {e}") from None
    names = [c["name"] for c in contexts or []]
    if context is not None and context not in names:
        raise KubeConfigError(
            f"the kubeconfig {joined} has no context {context!r}; its contexts: "
            f"{', '.join(names) or 'none'}. Give one of them as context= (or None for the "
            f"current one).")
    if context is None and not current:
        raise KubeConfigError(f"the kubeconfig {joined} has no current context: give context= "
                              f"(one of {', '.join(names) or 'none'})")
    name = context or current["name"]
    try:
        kconfig.load_kube_config(config_file=joined, context=name, client_configuration=cfg,
                                 persist_config=False)
    except ConfigException as e:
        raise KubeConfigError(f"the context {name!r} of {joined} cannot be used: {e}") from None
    return cfg, name


def _handshake(e: ApiException) -> ApiException:
    """The client reports a refused websocket upgrade as status 0 with the handshake's text
    ("Handshake status 403 Forbidden -+-+- headers -+-+- body"): the status and body in it."""
    m = re.search(r"Handshake status (\d+)", str(e.reason))
    if e.status or not m:
        return e
    out = ApiException(status=int(m.group(1)), reason=str(e.reason).split(" -+-+- ")[0])
    body = str(e.reason).rsplit(" -+-+- ", 1)[-1]
    if body.startswith(("b'", 'b"')):
        body = body[2:-1]
    out.body = body
    return out


class Kube:
    """The API of one cluster's namespace: ``core`` and ``apps`` for requests, and port-forwards
    on an API client of their own (the client's ``portforward`` swaps its API client's request
    function while it opens a stream, which must not touch other requests)."""

    def __init__(self, context: str | None, namespace: str):
        self.cfg, self.context = load_configuration(context)
        self.namespace = namespace
        api = k.ApiClient(self.cfg)
        self.core = k.CoreV1Api(api)
        self.apps = k.AppsV1Api(api)
        self.rbac = k.RbacAuthorizationV1Api(api)
        self._pf = k.CoreV1Api(k.ApiClient(self.cfg))
        self._pf_lock = threading.Lock()

    def call(self, verb: str, resource: str, fn, *args, what: str = "", missing_ok=False,
             conflict_ok=False, **kwargs):
        """``fn(*args, **kwargs)``, an API method; a refusal becomes rh's error naming ``verb``
        and ``resource``. With ``missing_ok``, a 404 answers None; with ``conflict_ok``, a 409
        (it exists already) answers None."""
        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            if (missing_ok and e.status == 404) or (conflict_ok and e.status == 409):
                return None
            raise api_error(e, verb, resource, self.namespace, what) from None

    def portforward(self, pod: str, port: int):
        """A port-forward stream to ``port`` of ``pod``: ``(stream, socket)``."""
        try:
            with self._pf_lock:
                pf = portforward(self._pf.connect_get_namespaced_pod_portforward, pod,
                                 self.namespace, ports=str(port))
        except ApiException as e:
            raise api_error(_handshake(e), "create", "pods/portforward", self.namespace,
                            pod) from None
        return pf, pf.socket(port)

    def close(self) -> None:
        for api in (self.core.api_client, self._pf.api_client):
            api.close()
