"""rh-skypilot: on-demand clusters (cloud VMs, Kubernetes pods) launched through SkyPilot and
brought up as rh-byo nodes over the SSH details SkyPilot reports."""

from __future__ import annotations

from rh_core import hookimpl


@hookimpl
def rh_compute_providers(register):
    # The provider loads when the registry is read, not when every installed plugin is
    # imported; SkyPilot itself (seconds to import) only when a cluster talks to it.
    from rh_skypilot.provider import OnDemandProvider

    register(OnDemandProvider)
