"""The ``here`` provider: the cluster a piece of code runs on, seen from inside it.

The server gives each of its env workers its own address, the certificate to trust and a
worker token (``RH_CLUSTER_URL``, ``RH_CLUSTER_CA``, ``RH_CLUSTER_TOKEN``). There, ``rh.here``
is a cluster of this provider: it reaches that server (calls, objects, runs, commands) without
the owner token, and cannot bring the cluster up or down from inside. Anywhere else ``rh.here``
is the local cluster.
"""

from __future__ import annotations

import os
from typing import ClassVar
from urllib.parse import urlsplit

import attrs

from rh_core.errors import ConfigError
from rh_core.plugin import ComputeProvider, Endpoint, hookimpl
from rh_core.resources.cluster import Cluster


@attrs.define(kw_only=True, slots=False)
class HereCluster(Cluster):
    """The cluster this code runs on (in one of its env workers)."""

    subtype: ClassVar[str] = "here"


class HereProvider(ComputeProvider):
    name = "here"
    cluster_class = HereCluster

    def endpoint(self) -> Endpoint | None:
        url = os.environ.get("RH_CLUSTER_URL")
        if not url:
            return None
        parts = urlsplit(url)
        return Endpoint(parts.hostname, parts.port, os.environ.get("RH_CLUSTER_TOKEN"),
                        tls_cert=os.environ.get("RH_CLUSTER_CA"))

    def up(self) -> Endpoint:
        ep = self.endpoint()
        if ep is None:
            raise ConfigError("this code does not run on a cluster: rh.here is the cluster "
                              "code runs on, from inside one of its env workers")
        return ep

    def down(self) -> None:
        raise ConfigError("a cluster cannot be brought down from code running on it: call "
                          "down() from where you brought it up")

    def restart_server(self) -> Endpoint:
        raise ConfigError("a cluster's server cannot be restarted from code running on it")


@hookimpl
def rh_compute_providers(register):
    register(HereProvider)
