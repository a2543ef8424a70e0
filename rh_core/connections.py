"""Built-in connection types: ``none`` (plain HTTP) and ``tls`` (HTTPS, certificate checked)."""

from __future__ import annotations

from rh_core.errors import ConfigError
from rh_core.hookspecs import hookimpl
from rh_core.interfaces import ConnectionInfo, ConnectionType


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class NoneConnection(ConnectionType):
    """Plain HTTP to the server's address. Fine on loopback or inside a trusted network."""

    name = "none"

    def open(self) -> ConnectionInfo:
        host = self.endpoint.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return ConnectionInfo(f"http://{_host(host)}:{self.endpoint.port}", verify=False,
                              shm_dir=self.endpoint.shm_dir)


class TlsConnection(ConnectionType):
    """HTTPS; the server's certificate is checked against ``ssl_certfile`` or the system CAs."""

    name = "tls"

    def open(self) -> ConnectionInfo:
        cert = getattr(self.cluster, "ssl_certfile", None)
        host = self.endpoint.host
        if host in ("0.0.0.0", "::"):
            host = "localhost"
        if cert is False:
            raise ConfigError("tls connections always verify the certificate")
        return ConnectionInfo(f"https://{_host(host)}:{self.endpoint.port}", verify=cert or True,
                              shm_dir=self.endpoint.shm_dir)


@hookimpl
def rh_connection_types(register):
    register(NoneConnection)
    register(TlsConnection)
