"""Every error rh raises on purpose. Each message says what was wrong and what to do."""

from __future__ import annotations


class RhError(Exception):
    """Base class of every error raised by rh itself (not by user code)."""


class ConfigError(RhError, ValueError):
    """A resource config or an argument to a factory is invalid."""


class UnknownPluginItemError(RhError, LookupError):
    """A provider, connection type, installer, store or secret backend is not installed."""

    def __init__(self, kind: str, name: str, installed: list[str], hint: str | None = None):
        self.kind, self.name, self.installed = kind, name, installed
        listed = ", ".join(sorted(installed)) or "none"
        super().__init__(
            f"unknown {kind} {name!r}; installed {kind}s: {listed}. "
            + (hint or "Install the plugin that provides it (see `rh plugins`).")
        )


class ResourceNotFoundError(RhError, LookupError):
    """No saved resource under that name."""


class SecretNotFoundError(ResourceNotFoundError):
    """No secret saved under that name, no values for it in its backend, or no credentials of a
    provider on this machine (the message names the files and variables looked at)."""


class SecretBackendError(RhError):
    """A secret backend cannot be used now: not installed, unavailable, locked, refusing the
    credentials, sealed. Never carries a secret's value."""


class ServerError(RhError):
    """The rh server answered with an error that is not a user exception."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class ConnectionFailedError(RhError, ConnectionError):
    """The client could not reach a cluster's server."""


class RemoteFunctionNotFound(ServerError, LookupError):
    """The server has no function, module or method under that name."""


class RemoteAttributeError(RemoteFunctionNotFound, AttributeError):
    """The object on the cluster has no such attribute (or it is private, or a method)."""


class NameClashError(ServerError):
    """Another function or class is already served under that name."""


class SerializationError(RhError, TypeError):
    """Arguments or a result could not be serialized for the wire."""


class WorkerCrashedError(ServerError):
    """The env worker process died while running a call; it is restarted for the next call."""


class RunNotFoundError(ServerError, LookupError):
    """A run key names no result on the cluster (never made, deleted, or the server restarted)."""


class RunCancelledError(ServerError):
    """The run (or call) was cancelled: ``handle.cancel()``, a timeout, or its caller went away."""


class RunTimeoutError(RhError, TimeoutError):
    """A call or a wait for a run took longer than its ``timeout``; the message names the run."""

    def __init__(self, message: str, run_key: str | None = None):
        self.run_key = run_key
        super().__init__(message)


class PackageInstallError(RhError):
    """Installing an env's package failed; the message carries the installer's output."""


class AuthError(ServerError, PermissionError):
    """The server refused the caller's credentials (401) or their access level (403)."""


class RemoteException(RhError):
    """A remote exception whose type could not be rebuilt locally.

    Carries the remote type name, message and traceback text.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = ""):
        self.type_name, self.message, self.remote_traceback = type_name, message, remote_traceback
        super().__init__(f"{type_name}: {message}")


# ------------------------------------------------------------------ data: folders, blobs, tables


class MissingDependencyError(RhError, ImportError):
    """A package a feature needs is not installed; the message names it and how to install it."""


class DataNotFoundError(RhError, FileNotFoundError):
    """A folder, file, table or bucket is not where a data resource says it is."""


class DataExistsError(RhError, FileExistsError):
    """A file is already there and ``overwrite=True`` was not given."""


class UnsafePathError(RhError, ValueError):
    """A name or archive member would land outside its folder (``..``, an absolute path, a
    symlink pointing out)."""


class DiskFullError(RhError, OSError):
    """The disk data was being written to is full; nothing was left under the final name."""


class TransferError(RhError, OSError):
    """A copy failed on the way (an archive cut short or changed); nothing was written."""


class StorageCredentialsError(RhError, PermissionError):
    """Object storage refused the request, or no credentials were found; the message names the
    variables and profile looked at."""
