"""Every hook a plugin can implement. This module is the contract of the plugin surface.

Collections are registered through a ``register`` callback: a plugin's hook implementation calls
``register(...)`` once per thing it adds. Hooks that pick one answer are ``firstresult``.
Types are imported only under ``TYPE_CHECKING`` so that importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from rh_core.plugin.interfaces import (
        AccessLevel,
        ComputeProvider,
        ConnectionType,
        PackageInstaller,
        RnsStore,
        SecretBackend,
        ServerContext,
    )

hookspec = pluggy.HookspecMarker("rh")

# --------------------------------------------------------------------------------------------
# Compute providers: turn a cluster spec into running nodes and back.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_compute_providers(register: Callable[[type[ComputeProvider]], None]) -> None:
    """Register compute providers.

    Called once when the plugin manager's registries are first read. Call
    ``register(ProviderClass)`` for each :class:`~rh_core.interfaces.ComputeProvider` subclass the
    plugin adds. The class attribute ``name`` is what users write in ``rh.cluster(provider=...)``;
    ``cluster_class`` is the attrs record for that provider's clusters (a subclass of
    :class:`~rh_core.resources.cluster.Cluster`), structured from configs whose ``subtype`` equals
    ``name``. Registering a name twice keeps the first registration and warns.
    """


# --------------------------------------------------------------------------------------------
# Connection types: how a client reaches a node's server.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_connection_types(register: Callable[[type[ConnectionType]], None]) -> None:
    """Register connection types.

    Call ``register(ConnectionClass)`` for each :class:`~rh_core.interfaces.ConnectionType`
    subclass. Its ``name`` is the value of a cluster's ``server_connection_type``. A connection
    turns a cluster's address into an HTTP base URL plus the httpx options to reach it (e.g. the
    certificate to verify), opening whatever it needs (a tunnel) on ``open()``.
    """


# --------------------------------------------------------------------------------------------
# Package installers: how an env's packages get onto a cluster.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_package_installers(register: Callable[[type[PackageInstaller]], None]) -> None:
    """Register package installers.

    Call ``register(InstallerClass)`` for each :class:`~rh_core.interfaces.PackageInstaller`
    subclass. Its ``name`` is the prefix users write in a package spec (``"reqs:./requirements.txt"``
    selects the installer named ``reqs``; a spec with no known prefix goes to ``pip``). Installers
    run on the cluster, inside the server, when an env is first needed.
    """


# --------------------------------------------------------------------------------------------
# Resource name stores: where saved configs live.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_rns_stores(register: Callable[[RnsStore], None]) -> None:
    """Register resource-name stores.

    Call ``register(store)`` with an instance of :class:`~rh_core.interfaces.RnsStore` for each
    store. Its ``prefix`` (``"~"``, ``"@"``, ``"^"``) is the first character of the names it
    holds: ``rh.load("~/a/b")`` asks the store with prefix ``~`` for path ``a/b``.
    """


# --------------------------------------------------------------------------------------------
# Secret backends.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_secret_backends(register: Callable[[type[SecretBackend]], None]) -> None:
    """Register secret backends.

    Call ``register(BackendClass)`` for each :class:`~rh_core.interfaces.SecretBackend` subclass.
    Configs refer to a secret by backend name and key, never by value. The class is instantiated
    with no arguments for each use; a secret's values go through ``set_values``/``get_values``/
    ``delete_values`` (by default one JSON text through ``set``/``get``/``delete``). Failures are
    ``rh_core.errors.SecretBackendError`` with a message that says what to do and holds no value.
    """


# --------------------------------------------------------------------------------------------
# Command line: commands a plugin adds to ``rh``.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_cli_commands(register: Callable[[object], None]) -> None:
    """Register command groups of the ``rh`` command line.

    Call ``register(app)`` with a ``typer.Typer`` whose ``name`` is the group's word:
    ``typer.Typer(name="den")`` makes ``rh den ...``. A name the core or an earlier plugin
    already uses keeps the first and warns. Keep the module that builds ``app`` cheap to
    import: every ``rh`` command imports it.
    """


# --------------------------------------------------------------------------------------------
# Server-side hooks, called by rh_server on each cluster node.
# --------------------------------------------------------------------------------------------


@hookspec
def rh_server_startup(server: ServerContext) -> None:
    """Called once when the server has bound its socket, before it serves the first request.

    ``server`` carries the bound host and port, the rh home and the server's settings. A plugin
    that must act on the node (start a reverse proxy, announce the node) does it here. An
    exception raised here stops the server start with that error in the server log.
    """


@hookspec
def rh_server_shutdown(server: ServerContext) -> None:
    """Called once when the server stops gracefully, after the last request was answered.

    Undo what ``rh_server_startup`` did. Exceptions are logged and ignored.
    """


@hookspec
def rh_server_idle(server: ServerContext, idle_seconds: float) -> None:
    """Called once when the server stops itself after ``--autostop-mins`` without work (no call
    running, no request but ``/health``), before it stops.

    The server then stops as on SIGTERM (``rh_server_shutdown`` follows) and exits with code 0.
    A plugin whose node must do more than lose its server (end a cloud job, stop a VM) does it
    here. Exceptions are logged and ignored: the server stops anyway.
    """


@hookspec(firstresult=True)
def rh_server_auth_check(
    token: str | None, resource: str, access: AccessLevel, server: ServerContext
) -> bool | None:
    """Decide whether the bearer ``token`` may use ``resource`` at ``access`` level.

    ``token`` is None when the request had no bearer token. ``resource`` is the name of the
    function, module or run the request touches (``"*"`` for cluster-wide routes). Return True
    to allow, False to refuse, None to leave the decision to the next implementation. The
    cluster owner's token is accepted before any plugin is asked; when every implementation
    returns None, an anonymous caller may read (JSON calls only) unless ``den_auth`` is on, and
    any other token is refused. Stops at the first non-None result.

    To refuse with a message of its own (a token a remote service rejected, that service being
    down), raise :class:`rh_core.errors.AccessRefused` with the status to answer (401, 403 or
    503); such a refusal is not cached.
    """


#: Marker for hook implementations; plugins use ``from rh_core import hookimpl``.
hookimpl = pluggy.HookimplMarker("rh")
