"""rh-kubernetes: clusters as pods on a Kubernetes cluster you already have, reached through
the API server's port-forward."""

from __future__ import annotations

from rh_core import hookimpl


@hookimpl
def rh_compute_providers(register):
    # The provider (and the kubernetes client, ~150 ms to import) loads when the registry is
    # read, not when every installed plugin is imported.
    from rh_kubernetes.provider import KubernetesProvider

    register(KubernetesProvider)


@hookimpl
def rh_connection_types(register):
    # See rh_compute_providers.
    from rh_kubernetes.connections import PortForwardConnection

    register(PortForwardConnection)
