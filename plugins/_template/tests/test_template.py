"""The template plugin registers its provider through the ``rh_compute_providers`` hook."""

from __future__ import annotations

import pytest
import rh_template

from rh_core.errors import ConfigError
from rh_core.plugin.registry import Registry, get_plugin_manager


def test_provider_is_registered():
    pm = get_plugin_manager(autoload=False)
    pm.register(rh_template, name="template")
    providers = Registry(pm).providers
    assert providers["template"] is rh_template.TemplateProvider
    assert providers["template"].cluster_class is rh_template.TemplateCluster
    assert "local" in providers  # the built-in provider is still there


def test_plugin_lists_its_hook():
    pm = get_plugin_manager(autoload=False)
    pm.register(rh_template, name="template")
    info = {i.name: i for i in Registry(pm).plugin_infos()}["template"]
    assert info.hooks == ["rh_compute_providers"]
    assert not info.builtin


def test_up_says_what_to_do():
    cluster = rh_template.TemplateCluster(name="demo", region="somewhere")
    provider = rh_template.TemplateProvider(cluster)
    assert provider.endpoint() is None
    with pytest.raises(ConfigError, match="implement up"):
        provider.up()
    provider.down()  # idempotent no-op
