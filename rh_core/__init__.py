"""rh: run Python functions and classes on other hardware as if they were local.

``import rh_core as rh``; then ``rh.function(fn).to(rh.cluster("local"))``. Nothing is started
or loaded at import time: plugins load and servers start on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names below are, for readers and type checkers
    from rh_core import configs
    from rh_core.configs import login
    from rh_core.errors import (
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
    from rh_core.names.resolve import current_folder, current_store, exists, set_folder
    from rh_core.names.secrets import secret_backend
    from rh_core.names.shared import logout, resources, whoami
    from rh_core.plugin.hookspecs import hookimpl
    from rh_core.resources import Cluster, Env, Function, GitPackage, Module, Package, Resource
    from rh_core.resources.base import load
    from rh_core.resources.calls import RunHandle, get
    from rh_core.resources.data import Blob, Folder, Table, blob, folder, table
    from rh_core.resources.factories import cluster, env, package
    from rh_core.resources.function import function, send
    from rh_core.resources.module import module
    from rh_core.resources.secret import Secret
    from rh_core.resources.secret_factories import Secrets, provider_secret, secret, secrets

#: name -> (module, attribute; None for the module itself): what ``rh.<name>`` is. Each is
#: imported on first use, so a process that imports one of rh's modules (an env worker taking
#: the wire format) does not load the client's whole API with it.
_LAZY: dict[str, tuple[str, str | None]] = {
    "configs": ("rh_core.configs", None),
    "login": ("rh_core.configs", "login"),
    "ConfigError": ("rh_core.errors", "ConfigError"),
    "ConflictError": ("rh_core.errors", "ConflictError"),
    "ConnectionFailedError": ("rh_core.errors", "ConnectionFailedError"),
    "DataExistsError": ("rh_core.errors", "DataExistsError"),
    "DataNotFoundError": ("rh_core.errors", "DataNotFoundError"),
    "DiskFullError": ("rh_core.errors", "DiskFullError"),
    "MissingDependencyError": ("rh_core.errors", "MissingDependencyError"),
    "NameClashError": ("rh_core.errors", "NameClashError"),
    "PackageInstallError": ("rh_core.errors", "PackageInstallError"),
    "RemoteAttributeError": ("rh_core.errors", "RemoteAttributeError"),
    "RemoteException": ("rh_core.errors", "RemoteException"),
    "RemoteFunctionNotFound": ("rh_core.errors", "RemoteFunctionNotFound"),
    "ResourceNotFoundError": ("rh_core.errors", "ResourceNotFoundError"),
    "RhError": ("rh_core.errors", "RhError"),
    "RunCancelledError": ("rh_core.errors", "RunCancelledError"),
    "RunNotFoundError": ("rh_core.errors", "RunNotFoundError"),
    "RunTimeoutError": ("rh_core.errors", "RunTimeoutError"),
    "SecretBackendError": ("rh_core.errors", "SecretBackendError"),
    "SecretNotFoundError": ("rh_core.errors", "SecretNotFoundError"),
    "SerializationError": ("rh_core.errors", "SerializationError"),
    "ServerError": ("rh_core.errors", "ServerError"),
    "StorageCredentialsError": ("rh_core.errors", "StorageCredentialsError"),
    "StoreUnavailableError": ("rh_core.errors", "StoreUnavailableError"),
    "TransferError": ("rh_core.errors", "TransferError"),
    "UnknownPluginItemError": ("rh_core.errors", "UnknownPluginItemError"),
    "UnsafePathError": ("rh_core.errors", "UnsafePathError"),
    "WorkerCrashedError": ("rh_core.errors", "WorkerCrashedError"),
    "current_folder": ("rh_core.names.resolve", "current_folder"),
    "current_store": ("rh_core.names.resolve", "current_store"),
    "exists": ("rh_core.names.resolve", "exists"),
    "set_folder": ("rh_core.names.resolve", "set_folder"),
    "secret_backend": ("rh_core.names.secrets", "secret_backend"),
    "logout": ("rh_core.names.shared", "logout"),
    "whoami": ("rh_core.names.shared", "whoami"),
    "hookimpl": ("rh_core.plugin.hookspecs", "hookimpl"),
    "Cluster": ("rh_core.resources", "Cluster"),
    "Env": ("rh_core.resources", "Env"),
    "Function": ("rh_core.resources", "Function"),
    "GitPackage": ("rh_core.resources", "GitPackage"),
    "Module": ("rh_core.resources", "Module"),
    "Package": ("rh_core.resources", "Package"),
    "Resource": ("rh_core.resources", "Resource"),
    "load": ("rh_core.resources.base", "load"),
    "RunHandle": ("rh_core.resources.calls", "RunHandle"),
    "get": ("rh_core.resources.calls", "get"),
    "Blob": ("rh_core.resources.data", "Blob"),
    "Folder": ("rh_core.resources.data", "Folder"),
    "Table": ("rh_core.resources.data", "Table"),
    "blob": ("rh_core.resources.data", "blob"),
    "folder": ("rh_core.resources.data", "folder"),
    "table": ("rh_core.resources.data", "table"),
    "cluster": ("rh_core.resources.factories", "cluster"),
    "env": ("rh_core.resources.factories", "env"),
    "package": ("rh_core.resources.factories", "package"),
    "function": ("rh_core.resources.function", "function"),
    "send": ("rh_core.resources.function", "send"),
    "module": ("rh_core.resources.module", "module"),
    "Secret": ("rh_core.resources.secret", "Secret"),
    "Secrets": ("rh_core.resources.secret_factories", "Secrets"),
    "provider_secret": ("rh_core.resources.secret_factories", "provider_secret"),
    "secret": ("rh_core.resources.secret_factories", "secret"),
    "secrets": ("rh_core.resources.secret_factories", "secrets"),
}


def __getattr__(name: str):
    where = _LAZY.get(name)
    if where is not None:
        module = importlib.import_module(where[0])
        value = module if where[1] is None else getattr(module, where[1])
        globals()[name] = value  # the next lookup is a plain attribute
        return value
    # ``rh.here``: the cluster this code runs on (the local one outside any cluster); built
    # when asked for, so importing rh starts nothing.
    if name == "here":
        from rh_core.resources.factories import here  # as every rh.<name>: on first use

        return here()
    # ``rh.kubernetes_cluster`` and the like: factories of installed providers, found when
    # first asked for (the registry loads then, not at import). Any other name is not rh's
    # (``from rh_core import user_config`` then imports the submodule).
    if name.endswith("_cluster"):
        from rh_core.resources.factories import provider_factory  # as above

        factory = provider_factory(name)
        if factory is not None:
            return factory
    raise AttributeError(f"module 'rh_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "here", "resources"})


class _Rh(types.ModuleType):
    """``rh.resources`` is the function listing a folder's resources, though importing the
    subpackage ``rh_core.resources`` binds that name on this module (as Python does for every
    submodule): that binding is ignored, and the subpackage is reached by importing it."""

    @property
    def resources(self):
        from rh_core.names.shared import resources  # as every rh.<name>: on first use

        return resources

    @resources.setter
    def resources(self, value) -> None:
        pass

    def __reduce__(self):
        # A function sent by value may refer to ``rh``: it is sent as the name to import, as
        # pickle and cloudpickle send any module (they know only the module type itself).
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Rh

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
