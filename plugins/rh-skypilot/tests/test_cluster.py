"""On-demand cluster objects: the factories, the builtin ``^`` configs, dryrun, saving and
loading, and the checks made at construction.

Boundary: nothing is stood in and nothing is contacted: making a cluster object reads only
rh's own stores (the session's private rh home) and the plugin's shipped configs.
"""

from __future__ import annotations

import pytest
from rh_skypilot.cluster import OnDemandCluster

import rh_core as rh
from rh_core.errors import ConfigError


def test_factory_and_the_seeds_form_make_the_same_cluster():
    a = rh.ondemand_cluster(name="rh-4-a100s", instance_type="A100:4", provider="gcp",
                            autostop_mins=-1, use_spot=True, image_id="my_ami_string",
                            region="us-east-1")
    b = rh.cluster(name="rh-4-a100s", instance_type="A100:4", provider="gcp", autostop_mins=-1,
                   use_spot=True, image_id="my_ami_string", region="us-east-1")
    assert isinstance(b, OnDemandCluster)
    assert a.config() == b.config()
    assert b.cloud == "gcp" and b.config()["subtype"] == "ondemand"


def test_provider_defaults_to_the_configs_cloud_else_cheapest(monkeypatch):
    assert rh.cluster(name="c1", instance_type="CPU:2").cloud == "cheapest"
    monkeypatch.setenv("RH_DEFAULT_PROVIDER", "aws")
    assert rh.ondemand_cluster(name="c1", instance_type="CPU:2").cloud == "aws"


def test_ips_make_a_byo_cluster_not_an_ondemand_one():
    c = rh.cluster(name="box", ips=["10.0.0.5"], ssh_creds={"ssh_user": "u"})
    assert c.subtype == "byo"


@pytest.mark.parametrize("builtin, instance_type", [
    ("^rh-cpu", "CPU:4+"), ("^rh-v100", "V100:1"), ("^rh-a10x", "A10G:1"),
    ("^rh-4-a100s", "A100:4")])
def test_builtin_configs_load_with_dryrun(builtin, instance_type):
    c = rh.cluster(name=builtin, dryrun=True)
    assert isinstance(c, OnDemandCluster)
    assert c.instance_type == instance_type
    assert c.dryrun is True
    assert c.short_name == builtin[1:]


def test_builtins_are_listed_with_the_cores():
    from rh_core.names import resolve

    names = resolve.list_names("^")
    assert {"local", "rh-cpu", "rh-v100", "rh-a10x", "rh-4-a100s"} <= set(names)


def test_dryrun_cluster_refuses_to_launch():
    c = rh.ondemand_cluster(name="dry", instance_type="A10G:1", dryrun=True)
    with pytest.raises(ConfigError, match="made with dryrun=True: it launches nothing"):
        c.up()


def test_saved_cluster_loads_by_name():
    c = rh.ondemand_cluster(name="saved-a10", instance_type="A10G:1", provider="aws",
                            open_ports=[443], autostop_mins=30)
    c.save()
    loaded = rh.cluster("saved-a10")
    assert isinstance(loaded, OnDemandCluster)
    assert loaded.config() == c.config()
    assert rh.ondemand_cluster("saved-a10").autostop_mins == 30
    assert "dryrun" not in loaded.config()
    loaded.delete_configs()


@pytest.mark.parametrize("fields, message", [
    ({"name": None}, "needs a name"),
    ({"name": "Bad_Name"}, "cannot name a SkyPilot cluster"),
    ({"name": "ok", "num_nodes": 0}, "num_nodes must be a whole number of 1 or more"),
    ({"name": "ok", "autostop_mins": 0}, "autostop_mins is minutes of idleness"),
    ({"name": "ok", "server_connection_type": "paramiko"}, "one of \\['ssh', 'tls', 'none'\\]"),
    ({"name": "ok", "ips": ["1.2.3.4"]}, "gets its addresses from SkyPilot"),
    ({"name": "ok", "gpus": 1}, "bad argument for an on-demand cluster.*known:"),
    ({"name": "ok", "image_id": "docker:ubuntu"}, "container images are not supported yet"),
])
def test_bad_fields_are_refused_at_construction(fields, message):
    with pytest.raises(ConfigError, match=message):
        rh.ondemand_cluster(**{"instance_type": "CPU:2", **fields})


def test_rh_plugins_lists_the_ondemand_provider():
    from rh_core.plugin.registry import registry

    infos = {i.name: i for i in registry().plugin_infos()}
    assert "ondemand" in infos
    assert "provider ondemand" in " ".join(infos["ondemand"].registers)
