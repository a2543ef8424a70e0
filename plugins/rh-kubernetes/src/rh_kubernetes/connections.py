"""The ``k8s_portforward`` connection type: the client reaches the server on the head pod's
loopback through port-forward streams of the API server: the call path writes to a stream's
socket directly (``ConnectionInfo.open_socket``), other requests go through a local port whose
connections each become a stream."""

from __future__ import annotations

from rh_core.errors import ConfigError
from rh_core.plugin.interfaces import ConnectionInfo, ConnectionType
from rh_kubernetes.portforward import LocalForward
from rh_kubernetes.provider import KubernetesProvider


class PortForwardConnection(ConnectionType):
    """A local port forwarded to the server's port in the head pod (the server listens only on
    the pod's loopback)."""

    name = "k8s_portforward"

    def open(self) -> ConnectionInfo:
        provider = self.cluster.provider
        if not isinstance(provider, KubernetesProvider):
            raise ConfigError(f"the {self.name} connection type needs a kubernetes cluster, not "
                              f"a {type(provider).name} one")
        self.forward = LocalForward(provider.open_server_stream)
        return ConnectionInfo(f"http://127.0.0.1:{self.forward.port}", verify=False,
                              open_socket=lambda: stream_socket(provider))

    def close(self) -> None:
        forward = self.__dict__.get("forward")
        if forward is not None:
            forward.close()

    def explain_drop(self) -> str | None:
        """Why the head pod's server went away (evicted, replaced, its container restarted)."""
        return self.cluster.provider.explain()


def stream_socket(provider: KubernetesProvider):
    """A new port-forward stream to the head pod's server, as the socket the call path writes
    to: no local port and no copying threads between the client and the stream (the stream
    lives as long as its socket is open)."""
    _, sock = provider.open_server_stream()
    # The kubernetes client wraps its end of the stream's socketpair only to ignore TCP options;
    # asyncio (an awaited call) needs the socket itself.
    return getattr(sock, "_socket", sock)
