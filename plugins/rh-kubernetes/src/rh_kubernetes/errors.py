"""The errors rh-kubernetes raises on purpose, and the messages that turn what the API server
and the pods say into what went wrong and what to do about it."""

from __future__ import annotations

import json

from rh_core.errors import ConfigError, ConnectionFailedError, RhError

#: Where the Role rh needs is written down (named in RBAC errors).
RBAC_DOC = "docs/clusters/kubernetes.md#rbac"


class KubeConfigError(ConfigError):
    """No usable kubeconfig: none found, an unknown context, a file that does not parse."""


class KubernetesAPIError(RhError):
    """The API server refused a request rh made (RBAC, quota, a missing namespace, ...)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        self.status, self.reason = status, reason
        super().__init__(message)


class ForbiddenError(KubernetesAPIError, PermissionError):
    """RBAC refused a verb on a resource: the message names both."""


class QuotaExceededError(KubernetesAPIError):
    """A ResourceQuota of the namespace left no room for what the cluster asks for."""


class NamespaceNotFoundError(KubernetesAPIError, LookupError):
    """The cluster's namespace does not exist."""


class PodStartError(ConnectionFailedError):
    """A pod of the cluster cannot start: unschedulable, its image cannot be pulled, its
    container crashes or is killed for memory. The message carries the pod's own words."""


def status_message(body: str | bytes | None) -> tuple[str, str | None]:
    """``(message, reason)`` of a Kubernetes ``Status`` answer (or the raw text)."""
    if not body:
        return "", None
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        return text.strip()[:1000], None
    if not isinstance(status, dict):
        return str(status)[:1000], None
    return str(status.get("message") or ""), status.get("reason")


def api_error(e, verb: str, resource: str, namespace: str, what: str = "") -> RhError:
    """The error for the ``kubernetes.client.ApiException`` ``e`` raised by ``verb`` on
    ``resource`` in ``namespace`` (``what``: the object's name, for the message)."""
    message, reason = status_message(getattr(e, "body", None))
    status = getattr(e, "status", None)
    target = f"{resource} {what!r}" if what else resource
    if status == 403 and "exceeded quota" in message:
        return QuotaExceededError(
            f"the namespace {namespace!r} has no quota left for {target}: {message}. Ask for "
            f"less (cpus, memory, gpus, num_nodes), bring other clusters down, or have the "
            f"quota raised.", status, reason)
    if status == 403:
        return ForbiddenError(
            f"Kubernetes refused to {verb} {resource} in namespace {namespace!r} (RBAC, 403 "
            f"Forbidden): {message or reason}. Your user needs the verb {verb!r} on {resource} "
            f"there; the Role rh needs is in {RBAC_DOC}.", status, reason)
    if status == 401:
        return KubernetesAPIError(
            f"the API server did not accept your credentials (401 Unauthorized) when rh tried "
            f"to {verb} {resource}: {message or reason}. Log in again (refresh the kubeconfig's "
            f"token) and retry.", status, reason)
    if status == 404 and f'namespaces "{namespace}" not found' in message:
        return NamespaceNotFoundError(
            f"the namespace {namespace!r} does not exist: create it (kubectl create namespace "
            f"{namespace}) or give the cluster another namespace=", status, reason)
    if status == 0 or status is None:
        return ConnectionFailedError(
            f"cannot reach the Kubernetes API server to {verb} {resource}: "
            f"{getattr(e, 'reason', e)}. Check the kubeconfig's server address and your network.")
    return KubernetesAPIError(
        f"Kubernetes answered {status} {reason or ''} when rh tried to {verb} {target} in "
        f"namespace {namespace!r}: {message}".rstrip(), status, reason)
