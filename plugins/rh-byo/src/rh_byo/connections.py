"""The connection types ``ssh`` and ``paramiko``: the client reaches the server on the node's
loopback through a port forwarded over the node's SSH connection."""

from __future__ import annotations

from rh_byo.provider import BYOProvider
from rh_core.errors import ConfigError
from rh_core.plugin.interfaces import ConnectionInfo, ConnectionType


class SSHConnection(ConnectionType):
    """An SSH tunnel to the server's port on the node (the server stays on its loopback)."""

    name = "ssh"

    def open(self) -> ConnectionInfo:
        provider = self.cluster.provider
        if not isinstance(provider, BYOProvider):
            raise ConfigError(f"the {self.name} connection type needs a cluster reached over "
                              f"SSH (byo)")
        local = provider.node.forward(self.endpoint.port)
        return ConnectionInfo(f"http://127.0.0.1:{local}", verify=False)


class ParamikoConnection(SSHConnection):
    """The same tunnel, carried by paramiko instead of the OpenSSH client: for password
    logins (``ssh_password``) and machines without an ssh client."""

    name = "paramiko"
