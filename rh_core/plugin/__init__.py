"""The plugin surface: what a plugin imports to take part.

``from rh_core.plugin import hookimpl, ComputeProvider, Endpoint`` gives the hook marker and the
small abstract classes and records of :mod:`rh_core.plugin.interfaces`. Every hook is declared
in :mod:`rh_core.plugin.hookspecs`; :mod:`rh_core.plugin.registry` builds the plugin manager
and keeps what plugins registered.
"""

from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import (
    AccessLevel,
    ComputeProvider,
    ConnectionInfo,
    ConnectionType,
    Endpoint,
    InstallTarget,
    PackageInstaller,
    RnsStore,
    SecretBackend,
    ServerContext,
)

__all__ = [
    "AccessLevel", "ComputeProvider", "ConnectionInfo", "ConnectionType", "Endpoint",
    "InstallTarget", "PackageInstaller", "RnsStore", "SecretBackend", "ServerContext", "hookimpl",
]
