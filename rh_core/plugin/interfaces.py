"""The small abstract classes a plugin implements: one per kind of thing it can register."""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar, Protocol

import attrs

from rh_core.errors import ConfigError

__all__ = [
    "AccessLevel", "Cluster", "ComputeProvider", "ConnectionInfo", "ConnectionType", "Endpoint",
    "InstallTarget", "PackageInstaller", "RnsStore", "SecretBackend", "ServerContext",
]


class Cluster(Protocol):
    """What providers and connections read of a cluster record: an instance of
    ``rh_core.resources.cluster.Cluster`` or of a provider's subclass of it. Declared here as a
    protocol so that the plugin surface imports nothing from the rooms above it."""

    name: str | None
    ips: list[str] | None
    server_port: int | None
    server_host: str
    server_connection_type: str
    den_auth: bool
    domain: str | None

    @property
    def short_name(self) -> str | None: ...

    def config(self) -> dict: ...


class AccessLevel(str, enum.Enum):
    """What a caller may do on a resource. ``write`` implies ``read``."""

    NONE = "none"
    READ = "read"
    WRITE = "write"

    def allows(self, needed: AccessLevel) -> bool:
        order = [AccessLevel.NONE, AccessLevel.READ, AccessLevel.WRITE]
        return order.index(self) >= order.index(needed)


@attrs.frozen
class Endpoint:
    """Where a cluster's server listens, as seen from the node that runs it."""

    host: str
    port: int
    #: Token the client presents to the server (owner token); never written to configs.
    token: str | None = attrs.field(default=None, repr=False)
    #: A shared-memory folder the server also uses, when it runs on the client's machine.
    shm_dir: str | None = None
    #: The certificate a TLS server presents, when the client should trust exactly that one.
    tls_cert: str | None = None


@attrs.frozen
class ConnectionInfo:
    """What the HTTP client needs: a base URL and how to verify TLS."""

    base_url: str
    #: ``True`` (system CAs), a path to a CA/certificate file, or ``False`` only for plain http.
    verify: bool | str = True
    #: Shared-memory folder for large buffers (same machine only; see ``rh_core.shm``).
    shm_dir: str | None = None
    #: Optional: opens a new connection to the server as a connected stream socket (for
    #: example a stream the connection opens through an API), for the call path to use instead
    #: of a TCP connection to ``base_url``'s host and port (other requests still go there).
    #: What it raises means nothing was sent: the client reconnects once, then reports it.
    open_socket: Callable[[], object] | None = None


class ComputeProvider(ABC):
    """Turns a cluster spec into running nodes with an rh server, and back."""

    #: Name users write in ``rh.cluster(provider=...)`` and the ``subtype`` of its configs.
    name: ClassVar[str]
    #: The attrs record class of this provider's clusters.
    cluster_class: ClassVar[type[Cluster]]
    #: Optional: the function users call as ``rh.<name>_cluster(...)`` (a ``staticmethod``),
    #: for a provider whose clusters have a signature of their own to document.
    factory: ClassVar[Callable[..., Cluster] | None] = None
    #: Optional: a class method ``list_status(names) -> {name: status}``, the provider's own
    #: status of several of its clusters at once (``rh clusters``, ``rh status``); names it
    #: does not know are left out. None: the provider reports none.
    list_status: ClassVar[Callable[[list[str]], dict[str, str]] | None] = None

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    @abstractmethod
    def up(self) -> Endpoint:
        """Make sure the nodes and the server run; return the server's endpoint. Idempotent."""

    @abstractmethod
    def endpoint(self) -> Endpoint | None:
        """The running server's endpoint, or None when the cluster is not up. Cheap."""

    @abstractmethod
    def down(self) -> None:
        """Stop the server and release the nodes. Idempotent."""

    def restart_server(self) -> Endpoint:
        """Stop the server process and start a new one on the same nodes."""
        self.down()
        return self.up()

    def nodes(self) -> list[str]:
        """Addresses of the cluster's nodes, head first."""
        return list(self.cluster.ips or ["127.0.0.1"])

    def server_log(self) -> str:
        """Text of the server's own log on the head node ('' when there is none yet)."""
        return ""

    def sync_code(self, local_root: str) -> str:
        """Make the code folder ``local_root`` available on the nodes; returns its path there.
        Providers whose nodes share this machine's filesystem keep it as it is."""
        return local_root

    def copy_to(self, local_path: str, remote_path: str, folder: bool) -> bool:
        """Copy data (a folder's contents into the folder ``remote_path``, or a file to the file
        ``remote_path``, an absolute path on the head node, its folders made as needed) with the
        provider's own transfer, such as rsync over SSH: no file half-written under its final
        name. False when it has none; rh then streams a tar through the server's
        ``/folder/tar``."""
        return False

    def copy_from(self, remote_path: str, local_path: str, folder: bool) -> bool:
        """The other way: the head node's folder or file ``remote_path`` to ``local_path``
        here. False when the provider has no transfer of its own."""
        return False


class ConnectionType(ABC):
    """How a client reaches the server of a cluster: plain HTTP, TLS, a tunnel..."""

    name: ClassVar[str]

    def __init__(self, cluster: Cluster, endpoint: Endpoint):
        self.cluster, self.endpoint = cluster, endpoint

    @abstractmethod
    def open(self) -> ConnectionInfo:
        """Open whatever the connection needs (e.g. a tunnel) and return how to reach the server."""

    def close(self) -> None:  # noqa: B027 - optional: most connections hold nothing
        """Release what ``open`` opened."""

    def explain_drop(self) -> str | None:
        """Optional: why the server's connection broke during a request, as a sentence for the
        error the caller gets (e.g. "pod k-0 was evicted: ..."); None when nothing is known."""
        return None


@attrs.frozen
class InstallTarget:
    """Where an installer puts a package: an env's virtualenv on the cluster."""

    python: str
    #: Folder of the virtualenv (its ``site-packages`` is under it).
    venv: Path
    #: Folder relative paths in specs are resolved against (the synced working directory).
    cwd: Path
    #: Sink for progress lines shown to the user.
    log: Callable[[str], None] = print


class PackageInstaller(ABC):
    """Installs one kind of package spec into an env's virtualenv."""

    name: ClassVar[str]

    @abstractmethod
    def install(self, spec: str, target: InstallTarget) -> None:
        """Install ``spec`` (without the ``name:`` prefix) into ``target``.

        Raise :class:`~rh_core.errors.PackageInstallError` with the tool's output on failure.
        """

    def cache_key(self, spec: str, cwd: Path) -> str:
        """A string that changes whenever what ``spec`` installs changes (e.g. a file's hash)."""
        return spec


class RnsStore(ABC):
    """A place where resource configs are saved under names."""

    prefix: ClassVar[str]
    writable: ClassVar[bool] = True
    #: The secret backend that keeps values beside this store's names (rh-den: ``den``), so a
    #: secret uploaded with a reference here can be read where the reference is; None: the
    #: user's ``secret_backend``.
    secret_backend: ClassVar[str | None] = None

    @abstractmethod
    def load(self, path: str) -> dict | None:
        """The config saved under ``path`` (no prefix), or None."""

    @abstractmethod
    def save(self, path: str, config: dict) -> None:
        """Save ``config`` under ``path``, replacing what was there."""

    @abstractmethod
    def delete(self, path: str) -> bool:
        """Delete ``path``; return whether something was deleted."""

    @abstractmethod
    def list(self, folder: str) -> list[str]:
        """Names (paths without prefix) saved directly under ``folder``."""

    def location(self) -> str:
        """Where :meth:`save` writes now, as a person reads it (a folder, a URL); the prefix
        when the store has nothing better to say. ``rh.current_store()`` shows it."""
        return self.prefix

    def places(self, folder: str) -> dict[str, list[str]]:
        """What ``rh ls`` shows: the names directly under ``folder`` (and its subfolders, ending
        in ``/``), by the place that holds them, in the order :meth:`load` looks. One place,
        :meth:`location`, unless the store overrides this."""
        return {self.location(): self.list(folder)}

    # A store that keeps versions, shares and accounts (the ``@`` store of rh-den) overrides
    # the methods below; by default a store keeps one config per name and no accounts.

    def load_version(self, path: str, version: int | None = None) -> tuple[dict, int | None] | None:
        """The config under ``path`` at ``version`` (None: the latest) and its version number
        (None for a store without versions), or None when nothing is saved there."""
        if version is not None:
            raise self._unsupported("keeps no versions", "load without version=")
        config = self.load(path)
        return None if config is None else (config, None)

    def save_version(self, path: str, config: dict, base_version: int | None) -> int | None:
        """Save ``config`` as the next version of ``path``; ``base_version`` is the version
        the writer loaded (None: written afresh). Raises ``ConflictError`` when the store has a
        newer one. Returns the new version (None for a store without versions)."""
        self.save(path, config)
        return None

    def history(self, path: str) -> list[dict]:
        """``[{"version", "timestamp", "author"}, ...]``, newest first."""
        raise self._unsupported("keeps no history", "save under '@/...' for versions")

    def share(self, path: str, principals: list[str], access_level: str,
              visibility: str | None) -> dict:
        """Give users or groups ``access_level`` on ``path``; set its visibility."""
        raise self._unsupported("cannot share", "save under '@/...' to share")

    def revoke(self, path: str, principals: list[str]) -> dict:
        raise self._unsupported("cannot share", "save under '@/...' to share")

    def resources(self, folder: str) -> list[tuple[str, str]]:
        """``(path, resource_type)`` of the resources directly under ``folder``."""
        out = []
        for name in self.list(folder):
            config = None if name.endswith("/") else self.load(name)
            if config is not None:
                out.append((name, str(config.get("resource_type", "resource"))))
        return out

    def login(self, url: str, token: str) -> str:
        """Log in to the store at ``url``; returns the user name."""
        raise self._unsupported("has no accounts", "log in to a shared store (pip install rh-den)")

    def logout(self) -> None:
        raise self._unsupported("has no accounts", "")

    def whoami(self) -> str | None:
        """The logged-in user's name, or None."""
        return None

    def _unsupported(self, what: str, hint: str):
        return ConfigError(f"the {self.prefix!r} store {what}" + (f"; {hint}" if hint else ""))


class SecretBackend(ABC):
    """Stores secret values by key; configs only ever hold the key."""

    name: ClassVar[str]

    @abstractmethod
    def get(self, key: str) -> str | None:
        """The secret value, or None."""

    @abstractmethod
    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when absent)."""

    # A secret (``rh.secret``) is several values under one key. By default they are kept as
    # one JSON text, so a backend that only stores text needs nothing more; a backend with
    # structured entries (Vault's KV) overrides these three to store them as they are.

    def get_values(self, key: str) -> dict[str, str] | None:
        """All values of the secret ``key``, or None when there is none."""
        text = self.get(key)
        return None if text is None else json.loads(text)

    def set_values(self, key: str, values: dict[str, str]) -> None:
        """Store the secret ``key`` with exactly ``values``, in one step where the backend can
        (a failure must not leave some values of it written)."""
        self.set(key, json.dumps(values, sort_keys=True))

    def delete_values(self, key: str) -> None:
        """Remove the secret ``key`` and all its values (no error when absent)."""
        self.delete(key)

    def list(self, prefix: str) -> list[str] | None:
        """The keys under ``prefix`` (without it), or None when this backend cannot list (the
        system keyring cannot)."""
        return None


@attrs.define
class ServerContext:
    """What server-side hooks receive about the server that calls them."""

    host: str
    port: int
    rh_home: Path
    cluster_name: str
    den_auth: bool = False
    #: Settings from the server's command line (``--setting KEY=JSON``), for plugins. A plugin
    #: that fronts the server sets ``settings["public"] = {"host", "port", "scheme", "cert"}``
    #: in ``rh_server_startup``; it is recorded for clients on the same machine.
    settings: dict = attrs.Factory(dict)
