"""rh-den: the shared store of ``@/...`` names, self-hosted; server and client in one
distribution.

On the client it registers the ``@`` name store (:mod:`rh_den.store`), the ``den`` secret
backend (:mod:`rh_den.secrets`) and the ``rh den`` commands (:mod:`rh_den.cli`); on a cluster
node, the check of the store's tokens (:mod:`rh_den.cluster_auth`). The store itself is
:mod:`rh_den.server` over :class:`rh_den.den.Den`. docs/den.md is the user's guide.
"""

from __future__ import annotations

from rh_core.plugin import hookimpl

__version__ = "0.1.0"


@hookimpl
def rh_rns_stores(register):
    from rh_den.store import DenStore  # httpx and the user config: when names are first used

    register(DenStore())


@hookimpl
def rh_secret_backends(register):
    from rh_den.secrets import DenSecrets  # the store's client: when secrets are first used

    register(DenSecrets)


@hookimpl
def rh_cli_commands(register):
    from rh_den.cli import app  # typer's groups: only when the rh command line starts

    register(app)


@hookimpl
def rh_server_auth_check(token, resource, access, server):
    if token is None or not token.startswith("rhd_"):
        return None  # not one of the store's tokens: the cluster's other checks decide
    from rh_den import cluster_auth

    return cluster_auth.check(token, resource, access, server)
