"""The template plugin registers its provider through the ``rh_compute_providers`` hook, and is
found through its entry point when installed."""

from __future__ import annotations

import pytest
import rh_template

import rh_core as rh
from rh_core.errors import ConfigError
from rh_core.plugin import registry as plugins
from rh_core.plugin.registry import Registry, get_plugin_manager


@pytest.fixture
def autoloaded(monkeypatch):
    """The per-process registry, built with the installed plugins' entry points."""
    monkeypatch.delenv("RH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugins.reset()
    yield
    plugins.reset()


def test_provider_is_registered():
    pm = get_plugin_manager(autoload=False)
    pm.register(rh_template, name="template")
    providers = Registry(pm).providers
    assert providers["template"] is rh_template.TemplateProvider
    assert providers["template"].cluster_class is rh_template.TemplateCluster
    assert providers["local"].__module__ == "rh_core.builtin.local"  # the built-in is still there


def test_plugin_lists_its_hook():
    pm = get_plugin_manager(autoload=False)
    pm.register(rh_template, name="template")
    info = {i.name: i for i in Registry(pm).plugin_infos()}["template"]
    assert info.hooks == ["rh_compute_providers"]
    assert not info.builtin


def test_installed_plugin_is_found_through_its_entry_point(autoloaded):
    info = {i.name: i for i in plugins.registry().plugin_infos()}["template"]
    assert (info.distribution, info.module) == ("rh-template", "rh_template")
    cluster = rh.cluster(name="demo", provider="template", region="somewhere")
    assert type(cluster) is rh_template.TemplateCluster
    config = cluster.config()
    assert (config["subtype"], config["region"]) == ("template", "somewhere")
    assert rh.Resource.from_config(config).region == "somewhere"


def test_up_says_what_to_do(autoloaded):
    cluster = rh.cluster(name="demo", provider="template", region="somewhere")
    with pytest.raises(ConfigError, match=r"^template provider: implement up\(\)$"):
        cluster.up()
    assert cluster.provider.endpoint() is None
    assert cluster.is_up() is False
    cluster.down()  # nothing runs: stopping is a no-op, and may be repeated
    cluster.down()
    assert cluster.is_up() is False
