"""Where data lives: this machine (``"file"``, also written ``"here"``), object storage (an
fsspec protocol: ``"s3"``, ``"gs"``...), or a cluster. What users pass as ``system=`` becomes one
of these; object storage filesystems are made here, with errors that name the missing package,
the credentials looked for, or the missing bucket."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any, Iterator

from rh_core import errors
from rh_core.names import resolve as rns
from rh_core.resources.base import Resource
from rh_core.resources.cluster import Cluster
from rh_core.resources.factories import cluster as make_cluster

#: Spellings of this machine's filesystem.
HERE = ("here", "file")
#: Object storage users commonly name, known without importing fsspec (for the message when
#: the data extra is missing).
COMMON_STORAGE = ("s3", "s3a", "gs", "gcs", "az", "abfs", "adl", "hf", "http", "https", "memory")
EXTRA = "pip install 'rh-core[data]'"
#: data_config keys that hold credentials: they stay out of configs (use env vars or profiles).
SECRET_KEYS = ("key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key",
               "aws_session_token", "account_key", "sas_token", "client_secret")


def fsspec():
    """``(fsspec, its table of known filesystems)``, or MissingDependencyError naming the
    extra that brings it."""
    try:
        # fsspec is an optional dependency (the data extra), needed only for object storage.
        import fsspec as module
        from fsspec.registry import known_implementations
    except ImportError:
        raise errors.MissingDependencyError(
            f"object storage needs fsspec (and s3fs for S3): {EXTRA}") from None
    return module, known_implementations


def protocols() -> set[str]:
    """The object storage protocols fsspec knows (installed or not)."""
    return set(fsspec()[1]) - {"file", "local"}


def as_system(system: Any) -> str | Cluster:
    """``"file"``, a storage protocol, or a Cluster, from what users pass as ``system=`` (also
    ``fs=``): None or ``"here"`` for this machine, ``"s3"``..., a Cluster, its name, its config."""
    if system is None or system in HERE:
        return "file"
    if isinstance(system, Cluster):
        return system
    if isinstance(system, dict):
        return Resource.from_config(system)
    if not isinstance(system, str):
        raise errors.ConfigError(f"system= takes 'here', a storage protocol ('s3', 'gs', ...) or "
                                 f"a cluster, got {system!r:.100}")
    if system == "local" or rns.exists(system):
        return make_cluster(system)
    if system in COMMON_STORAGE or system in protocols():
        return system
    raise errors.ConfigError(
        f"unknown system {system!r}: not a saved cluster, nor a storage protocol fsspec knows. "
        f"Use 'here' (this machine), a protocol like 's3' or 'gs', or a cluster")


def split_url(path: str) -> tuple[str | None, str]:
    """``("s3", "bucket/key")`` from ``"s3://bucket/key"``; ``(None, path)`` without a scheme."""
    scheme, sep, rest = path.partition("://")
    if sep and scheme and scheme.isalnum():
        return scheme.lower(), rest
    return None, path


def storage_url(protocol: str, path: str) -> str:
    """The full URL of ``path`` in ``protocol`` (``s3://bucket/key``)."""
    scheme, rest = split_url(path)
    if scheme and scheme != protocol:
        raise errors.ConfigError(f"the path {path!r} is not in {protocol!r} storage")
    return f"{protocol}://{rest.strip('/')}"


def check_config(config: dict | None) -> dict:
    """``data_config`` (the filesystem's options, e.g. ``{"endpoint_url": ...}``) without
    credentials, which would land in saved configs."""
    config = dict(config or {})
    secret = sorted(k for k in config if k.lower() in SECRET_KEYS)
    if secret:
        raise errors.ConfigError(
            f"data_config holds credentials ({', '.join(secret)}), which would be saved with "
            f"the resource: give them through the provider's environment variables or profile "
            f"instead (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE)")
    return config


def filesystem(protocol: str, config: dict | None = None):
    """An fsspec filesystem for ``protocol``; MissingDependencyError names its package."""
    module, known = fsspec()
    try:
        cls = module.get_filesystem_class(protocol)
    except ValueError:
        raise errors.ConfigError(f"fsspec knows no filesystem {protocol!r}") from None
    except ImportError:
        impl = known.get(protocol, {})
        package = impl.get("class", protocol).split(".")[0]
        raise errors.MissingDependencyError(
            f"the {protocol!r} filesystem needs the package {package}, which is not installed: "
            f"pip install {package}" + (f" (or {EXTRA})" if protocol in ("s3", "s3a") else "")
        ) from None
    options = dict(config or {})
    if protocol in ("s3", "s3a") and "endpoint_url" in options:  # s3fs takes it in client_kwargs
        options.setdefault("client_kwargs", {})["endpoint_url"] = options.pop("endpoint_url")
    # A new instance each time (not fsspec's cache), so credentials set meanwhile count.
    return cls(skip_instance_cache=True, **options)


def _credentials_hint(protocol: str) -> str:
    if protocol in ("s3", "s3a"):
        profile = os.environ.get("AWS_PROFILE") or "default"
        return ("looked at the environment variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                "(and AWS_SESSION_TOKEN), then the profile "
                f"{profile!r} (AWS_PROFILE) in ~/.aws/credentials and ~/.aws/config "
                "(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE): set one of them")
    if protocol in ("gs", "gcs"):
        return ("looked at GOOGLE_APPLICATION_CREDENTIALS and gcloud's default credentials: "
                "set one of them")
    return "give the filesystem's credentials through its environment variables or profile"


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Errors of object storage as rh's: a missing bucket or key, missing or refused
    credentials."""
    protocol, rest = split_url(url)
    bucket = rest.split("/", 1)[0]
    try:
        yield
    except errors.RhError:
        raise
    except FileNotFoundError as e:
        if "bucket" in str(e).lower():
            raise errors.DataNotFoundError(
                f"the bucket {bucket!r} does not exist ({url}): create it first, or check its "
                f"name and the endpoint") from None
        raise errors.DataNotFoundError(f"nothing at {url}: check the path") from None
    except PermissionError as e:
        raise errors.StorageCredentialsError(
            f"{protocol} refused access to {url} ({e}); {_credentials_hint(protocol or '')}"
        ) from None
    except Exception as e:
        if type(e).__name__ in ("NoCredentialsError", "PartialCredentialsError",
                                "DefaultCredentialsError"):
            raise errors.StorageCredentialsError(
                f"no credentials for {url}: {_credentials_hint(protocol or '')}") from None
        raise


def digest(*parts: str) -> str:
    """A short stable id of ``parts`` (for default paths of copies)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]
