"""rh-byo: clusters of machines you can SSH into (on-prem boxes, VMs from any provider)."""

from __future__ import annotations

from rh_core import hookimpl


@hookimpl
def rh_compute_providers(register):
    # The provider (fabric, paramiko, ...) loads when the registry is read, not when every
    # installed plugin is imported.
    from rh_byo.provider import BYOProvider

    register(BYOProvider)


@hookimpl
def rh_connection_types(register):
    # See rh_compute_providers.
    from rh_byo.connections import ParamikoConnection, SSHConnection

    register(SSHConnection)
    register(ParamikoConnection)
