"""rh-byo: clusters of machines you can SSH into (on-prem boxes, VMs from any provider)."""

from __future__ import annotations

from rh_core import hookimpl


@hookimpl
def rh_compute_providers(register):
    from rh_byo.provider import BYOProvider

    register(BYOProvider)


@hookimpl
def rh_connection_types(register):
    from rh_byo.provider import ParamikoConnection, SSHConnection

    register(SSHConnection)
    register(ParamikoConnection)
