"""rh: run Python functions and classes on other hardware as if they were local.

``import rh_core as rh``; then ``rh.function(fn).to(rh.cluster("local"))``. Nothing is started
or loaded at import time: plugins load and servers start on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from rh_core import configs  # noqa: E402 - rh.configs.get/set/all: the module itself
from rh_core.configs import login  # noqa: E402
from rh_core.errors import (  # noqa: E402
    ConfigError,
    ConflictError,
    ConnectionFailedError,
    DataExistsError,
    DataNotFoundError,
    DiskFullError,
    MissingDependencyError,
    NameClashError,
    PackageInstallError,
    RemoteAttributeError,
    RemoteException,
    RemoteFunctionNotFound,
    ResourceNotFoundError,
    RhError,
    RunCancelledError,
    RunNotFoundError,
    RunTimeoutError,
    SecretBackendError,
    SecretNotFoundError,
    SerializationError,
    ServerError,
    StorageCredentialsError,
    StoreUnavailableError,
    TransferError,
    UnknownPluginItemError,
    UnsafePathError,
    WorkerCrashedError,
)
from rh_core.names.resolve import current_folder, current_store, exists, set_folder  # noqa: E402
from rh_core.names.secrets import secret_backend  # noqa: E402
from rh_core.names.shared import logout, resources, whoami  # noqa: E402
from rh_core.plugin.hookspecs import hookimpl  # noqa: E402
from rh_core.resources import Cluster, Env, Function, GitPackage, Module, Package, Resource  # noqa: E402
from rh_core.resources.base import load  # noqa: E402
from rh_core.resources.calls import RunHandle, get  # noqa: E402
from rh_core.resources.data import Blob, Folder, Table, blob, folder, table  # noqa: E402
from rh_core.resources.factories import cluster, env, package  # noqa: E402
from rh_core.resources.factories import here as _here  # noqa: E402
from rh_core.resources.factories import provider_factory as _provider_factory  # noqa: E402
from rh_core.resources.function import function, send  # noqa: E402
from rh_core.resources.module import module  # noqa: E402
from rh_core.resources.secret import Secret  # noqa: E402
from rh_core.resources.secret_factories import Secrets, provider_secret, secret, secrets  # noqa: E402


def __getattr__(name: str):
    # ``rh.here``: the cluster this code runs on (the local one outside any cluster); built
    # lazily so importing rh starts nothing.
    if name == "here":
        return _here()
    # ``rh.kubernetes_cluster`` and the like: factories of installed providers, found when
    # first asked for (the registry loads then, not at import).
    factory = _provider_factory(name) if name.endswith("_cluster") else None
    if factory is not None:
        return factory
    raise AttributeError(f"module 'rh_core' has no attribute {name!r}")


__all__ = [
    "Blob", "Cluster", "ConfigError", "ConflictError", "ConnectionFailedError", "DataExistsError",
    "DataNotFoundError", "DiskFullError", "Env", "Folder", "Function", "GitPackage",
    "MissingDependencyError", "Module", "NameClashError", "Package", "PackageInstallError",
    "RemoteAttributeError", "RemoteException", "RemoteFunctionNotFound", "Resource",
    "ResourceNotFoundError", "RhError", "RunCancelledError", "RunHandle", "RunNotFoundError",
    "RunTimeoutError", "Secret", "SecretBackendError", "SecretNotFoundError", "Secrets",
    "SerializationError", "ServerError", "StorageCredentialsError", "StoreUnavailableError",
    "Table", "TransferError", "UnknownPluginItemError", "UnsafePathError", "WorkerCrashedError",
    "blob", "cluster", "configs", "current_folder", "current_store", "env", "exists", "folder",
    "function", "get", "hookimpl", "load", "login", "logout", "module", "package",
    "provider_secret", "resources", "secret", "secret_backend", "secrets", "send", "set_folder",
    "table", "whoami",
]
