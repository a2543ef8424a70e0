"""Built-in connection types: ``none`` (plain HTTP) and ``tls`` (HTTPS, certificate checked)."""

from __future__ import annotations

from pathlib import Path

from rh_core.errors import ConfigError
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import ConnectionInfo, ConnectionType
from rh_core.transport.tls import is_self_signed


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
        cert = self.endpoint.tls_cert or getattr(self.cluster, "ssl_certfile", None)
        host = self.cluster.domain or self.endpoint.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        # A private CA's bundle is the trust anchor when given; a self-signed certificate is its
        # own; one from a public CA is checked against the system's CAs. Never verify=False.
        verify: bool | str = True
        bundle = getattr(self.cluster, "ssl_ca_bundle", None)
        if bundle:
            bundle = str(Path(bundle).expanduser())
            if not Path(bundle).is_file():
                raise ConfigError(f"ssl_ca_bundle {bundle} does not exist")
            verify = bundle
        elif cert:
            if not Path(cert).is_file():
                raise ConfigError(f"ssl_certfile {cert} does not exist")
            if is_self_signed(cert):
                verify = str(cert)
        return ConnectionInfo(f"https://{_host(host)}:{self.endpoint.port}", verify=verify,
                              shm_dir=self.endpoint.shm_dir)


@hookimpl
def rh_connection_types(register):
    register(NoneConnection)
    register(TlsConnection)
