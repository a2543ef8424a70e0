"""The factories users call: ``rh.cluster``, ``rh.env``, ``rh.package``, and the
``rh.<provider>_cluster`` factories providers declare."""

from __future__ import annotations

import os
from typing import Any

import attrs

from rh_core.errors import ConfigError, ResourceNotFoundError
from rh_core.names import resolve as rns
from rh_core.plugin.registry import registry
from rh_core.resources.base import load
from rh_core.resources.cluster import Cluster
from rh_core.resources.env import Env, GitPackage, Package, read_env_file


def cluster(name: str | None = None, provider: str | None = None, dryrun: bool = False,
            **fields: Any):
    """A cluster: ``rh.cluster("local")``, a saved one by name, or a new one from fields.

    ``rh.cluster(name="a10", ips=[...], ssh_creds={...})`` describes a bring-your-own cluster
    (with its plugin installed); ``rh.cluster(name="a10", instance_type="A10G:1",
    provider="aws")``, a cluster given an instance type and no ips, an on-demand one (with
    rh-skypilot), where ``provider=`` names the cloud; otherwise ``provider=`` picks the compute
    provider explicitly. ``dryrun=True`` builds or loads the object only: making a cluster
    object never contacts anything, and a provider that launches machines refuses to launch
    one made so.
    """
    if name in ("local", "^local") and not fields and provider in (None, "local"):
        return registry().provider("local").cluster_class(name="local")
    if name is not None and not fields and provider is None:
        try:
            loaded = load(name)
        except ResourceNotFoundError:
            raise ResourceNotFoundError(
                f"unknown cluster {name!r}: no cluster is saved under that name (saved: "
                f"{rns.list_names('~') or 'none'}). Create it with rh.cluster(name=..., ips=[...]) "
                f"or use rh.cluster('local')."
            ) from None
        if not isinstance(loaded, Cluster):
            raise ConfigError(f"{name!r} is a {loaded.resource_type}, not a cluster")
        if dryrun and "dryrun" in attrs.fields_dict(type(loaded)):
            loaded.dryrun = True
        return loaded
    if "host" in fields:  # the short form users write
        fields["server_host"] = fields.pop("host")
    providers = registry().providers
    if fields.get("instance_type") and not fields.get("ips") and provider not in providers:
        return _ondemand(name, provider, dryrun, fields)
    if provider is None:
        provider = "byo" if fields.get("ips") else "local"
    cls = registry().provider(provider).cluster_class
    if dryrun and "dryrun" in attrs.fields_dict(cls):
        fields["dryrun"] = True
    try:
        return cls(name=name, **fields)
    except TypeError as e:
        known = sorted(f.name for f in attrs.fields(cls))
        raise ConfigError(f"bad argument for a {provider} cluster ({e}); known: {known}") from None


def _ondemand(name: str | None, cloud: str | None, dryrun: bool, fields: dict[str, Any]):
    """An on-demand cluster: the factory of the provider ``ondemand`` (rh-skypilot), with
    ``provider=`` as the cloud."""
    factory = provider_factory("ondemand_cluster")
    if factory is None:
        raise ConfigError(
            f"a cluster with instance_type={fields['instance_type']!r} and no ips is an "
            f"on-demand cluster, which needs the rh-skypilot plugin: pip install rh-skypilot "
            f"(or give ips=[...] for machines you have)")
    return factory(name=name, provider=cloud, dryrun=dryrun, **fields)


def provider_factory(attribute: str):
    """The factory behind ``rh.<provider>_cluster`` (``rh.kubernetes_cluster``): the
    ``factory`` an installed provider declares; None when no provider of that name declares
    one."""
    if not attribute.endswith("_cluster"):
        return None
    cls = registry().providers.get(attribute[: -len("_cluster")])
    return getattr(cls, "factory", None) if cls is not None else None


def env(name: str | None = None, reqs: list[str | Package | GitPackage] | None = None,
        env_vars: dict[str, str] | str | os.PathLike | None = None, working_dir: str | None = None,
        processes: int = 1, threads: int = 8) -> Env:
    """An env: its own worker processes, variables and packages on the cluster.

    ``env_vars`` is a dict, or the path of a dotenv file (``".env"``, relative to the working
    directory), read each time the env is sent to a cluster. With only ``name``, loads a saved
    env if there is one.
    """
    if name and reqs is None and env_vars is None and working_dir is None and rns.exists(name):
        loaded = load(name)
        if isinstance(loaded, Env):
            return loaded
    if isinstance(env_vars, (str, os.PathLike)):
        read_env_file(os.fspath(env_vars))  # a missing or bad file fails here, not at .to()
    else:
        env_vars = dict(env_vars or {})
    return Env(name=name, reqs=list(reqs or []), env_vars=env_vars,
               working_dir=working_dir, processes=processes, threads=threads)


def package(spec: str) -> Package:
    """A package spec: ``"numpy"``, ``"reqs:requirements.txt"``, ``"local:./pkg"``, ``"git+URL@rev"``."""
    return Package.parse(spec)


def here():
    """The cluster this code runs on: inside a cluster's env worker, that cluster (its server
    reached with the worker's own token); anywhere else, the local cluster."""
    if os.environ.get("RH_CLUSTER_URL"):
        cls = registry().provider("here").cluster_class
        conn = "tls" if os.environ["RH_CLUSTER_URL"].startswith("https:") else "none"
        return cls(name=os.environ.get("RH_CLUSTER_NAME") or "here",
                   server_connection_type=conn)
    return cluster("local")
