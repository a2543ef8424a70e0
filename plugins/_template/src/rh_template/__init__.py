"""rh-template: a plugin skeleton that adds a compute provider named ``template``.

Copy this folder to ``plugins/rh-<name>/`` and replace the provider with a real one. A plugin is
this module plus the entry point in ``pyproject.toml``; rh finds it through the entry point group
``rh`` and calls the hooks it implements.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.plugin import ComputeProvider, Endpoint, hookimpl
from rh_core.resources.cluster import Cluster


@attrs.define(kw_only=True, slots=False)
class TemplateCluster(Cluster):
    """A cluster of the ``template`` provider; its config has ``"subtype": "template"``."""

    subtype: ClassVar[str] = "template"

    #: An example of a provider's own field: it appears in the cluster's saved config.
    region: str | None = None


class TemplateProvider(ComputeProvider):
    """Brings ``template`` clusters up and down. Replace the bodies with real work."""

    name = "template"
    cluster_class = TemplateCluster

    def up(self) -> Endpoint:
        # A real provider starts (or finds) the nodes, starts ``python -m rh_server`` on the
        # head node with RH_SERVER_TOKEN in its environment, and returns where it listens.
        raise ConfigError("template provider: implement up()")

    def endpoint(self) -> Endpoint | None:
        # Nothing is ever running for the template, so there is no endpoint.
        return None

    def down(self) -> None:
        # Nothing to stop; a real provider stops the server and releases the nodes.
        return None


@hookimpl
def rh_compute_providers(register):
    register(TemplateProvider)
