"""The core's side of on-demand clusters, without their plugin: what ``rh.cluster`` makes of an
instance type, ``dryrun=``, ``rh clusters``, and a bring-up step showing a provider's own log
lines. (With rh-skypilot installed, its tests cover the on-demand clusters themselves.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rh_core as rh
from rh_core.plugin import registry as plugins
from rh_core.progress import Steps


@pytest.fixture
def without_plugins(monkeypatch):
    """A registry of the core's own plugins only, whatever is installed here."""
    monkeypatch.setenv("RH_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins.reset()
    yield
    plugins.reset()


def test_an_instance_type_without_ips_asks_for_the_ondemand_plugin(without_plugins):
    with pytest.raises(rh.ConfigError) as e:
        rh.cluster(name="a10", instance_type="A10G:1", provider="aws")
    assert "instance_type='A10G:1' and no ips is an on-demand cluster" in str(e.value)
    assert "pip install rh-skypilot" in str(e.value)


def test_dryrun_is_taken_by_any_factory_call(without_plugins, rh_home):
    """Making a cluster object contacts nothing; dryrun= is accepted for every kind."""
    c = rh.cluster(name="dry-local", provider="local", dryrun=True)
    assert c.subtype == "local" and not c.is_up()
    c.save()
    assert rh.cluster("dry-local", dryrun=True).config() == c.config()
    c.delete_configs()


def test_a_step_shows_its_own_log_lines(capfd, monkeypatch):
    monkeypatch.delenv("RH_QUIET", raising=False)
    with Steps("c1").step("launching") as s:
        s["show"]("Launching c1 in us-east-1")
    err = capfd.readouterr().err
    assert "rh c1:   Launching c1 in us-east-1\n" in err
    assert "rh c1: launching (" in err
    monkeypatch.setenv("RH_QUIET", "1")
    with Steps("c1").step("quiet") as s:
        s["show"]("not shown")
    assert capfd.readouterr().err == ""


def test_rh_clusters_lists_saved_clusters_with_their_provider(rh_home):
    rh.cluster(name="listed-local", provider="local").save()
    rh.env(name="not-a-cluster").save()
    rh_cmd = Path(sys.executable).with_name("rh")
    out = subprocess.run([str(rh_cmd), "clusters"], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    (row,) = [line for line in out.stdout.splitlines() if "listed-local" in line]
    assert "local" in row and row.rstrip(" │").endswith("-")  # the local provider reports none
    assert "not-a-cluster" not in out.stdout
    rh.cluster("listed-local").delete_configs()
