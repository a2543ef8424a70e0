"""The translation of an on-demand cluster to SkyPilot's request, one test per row of
``rh_skypilot.spec`` (INSTANCE_FORMS, then FIELDS).

Boundary: none is stood in. Real ``sky.Resources`` and ``sky.Task`` objects are built offline
and read back field by field; the rows that name an instance type of a cloud need SkyPilot's
catalog, which the session's HOME holds (a small hand-written AWS catalog, see conftest.py),
so SkyPilot fetches nothing.
"""

from __future__ import annotations

import pytest
import sky
from rh_skypilot import spec

import rh_core as rh
from rh_core.errors import ConfigError


def resources(**fields) -> sky.Resources:
    c = rh.ondemand_cluster(name="spec-test", **fields)
    return spec.to_resources(c)


def test_every_row_has_a_test():
    """The tables are what this file tests: a row added there needs a test here."""
    assert [form for form, _, _ in spec.INSTANCE_FORMS] == ["cpus", "accelerators",
                                                            "instance_type"]
    assert [argument for _, argument, _ in spec.FIELDS] == [
        "infra", "use_spot", "image_id", "disk_size", "memory", "ports", "labels"]


# ------------------------------------------------------------------ INSTANCE_FORMS

@pytest.mark.parametrize("text, cpus", [("CPU:4", "4"), ("CPU:4+", "4+"), ("cpu:0.5", "0.5")])
def test_cpus_form(text, cpus):
    r = resources(instance_type=text)
    assert r.cpus == cpus
    assert r.accelerators is None and r.instance_type is None


@pytest.mark.parametrize("text, accelerators", [("A10G:1", {"A10G": 1}), ("A100:4", {"A100": 4}),
                                                ("V100:8", {"V100": 8})])
def test_accelerators_form(text, accelerators):
    r = resources(instance_type=text)
    assert r.accelerators == accelerators
    assert r.instance_type is None


def test_instance_type_form_without_a_cloud():
    """No cloud named: SkyPilot keeps the type for its optimizer to place."""
    r = resources(instance_type="m5.xlarge")
    assert r.instance_type == "m5.xlarge"
    assert r.cloud is None


def test_instance_type_form_on_a_cloud_reads_the_catalog():
    """A named cloud: SkyPilot checks the type against its catalog (the hand-written one) and
    fills in what the type has."""
    r = resources(instance_type="m5.xlarge", provider="aws")
    assert r.instance_type == "m5.xlarge"
    assert str(r.cloud) == "AWS"
    assert (r.cpus, r.memory) == ("4.0", "16.0")  # from the catalog
    assert r.get_cost(3600) == pytest.approx(0.192)  # the catalog's on-demand price


@pytest.mark.parametrize("text", ["A10G:", ":4", "CPU:", "m5 xlarge", "A10G:x"])
def test_a_form_sky_does_not_read_is_refused_at_construction(text):
    with pytest.raises(ConfigError, match="not a form SkyPilot reads"):
        rh.ondemand_cluster(name="spec-test", instance_type=text)


# ------------------------------------------------------------------ FIELDS

@pytest.mark.parametrize("fields, cloud, region, zone", [
    ({"provider": "aws"}, "AWS", None, None),
    ({"provider": "gcp", "region": "us-central1"}, "GCP", "us-central1", None),
    ({"provider": "aws", "region": "us-east-1", "zone": "us-east-1a",
      "instance_type": "m5.xlarge"}, "AWS", "us-east-1", "us-east-1a"),
    ({"provider": "kubernetes"}, "Kubernetes", None, None),
    ({"provider": "cheapest"}, None, None, None),
    ({"provider": "azure"}, "Azure", None, None),
])
def test_infra_row(fields, cloud, region, zone):
    r = resources(**{"instance_type": "CPU:2", **fields})
    assert (str(r.cloud) if r.cloud else None, r.region, r.zone) == (cloud, region, zone)


def test_infra_row_refuses_a_zone_without_its_region():
    with pytest.raises(ConfigError, match="zone='us-east-1a' needs its region"):
        rh.ondemand_cluster(name="spec-test", provider="aws", zone="us-east-1a")


def test_infra_row_unknown_cloud_lists_the_known_ones():
    c = rh.ondemand_cluster(name="spec-test", provider="nocloud", instance_type="CPU:2")
    with pytest.raises(ConfigError, match=r"nocloud.*not a valid cloud among.*'aws'") as e:
        spec.to_resources(c)
    assert "provider=" in str(e.value)


def test_use_spot_row_follows_the_config_default(monkeypatch):
    assert resources(instance_type="CPU:2", use_spot=True).use_spot is True
    assert resources(instance_type="CPU:2").use_spot is False
    monkeypatch.setenv("RH_USE_SPOT", "true")
    assert resources(instance_type="CPU:2").use_spot is True
    assert resources(instance_type="CPU:2", use_spot=False).use_spot is False


def test_image_id_row():
    r = resources(instance_type="CPU:2", provider="aws", region="us-east-1",
                  image_id="ami-0123456789")
    assert r.image_id == {"us-east-1": "ami-0123456789"}


def test_disk_size_row():
    assert resources(instance_type="CPU:2", disk_size=200).disk_size == 200
    with pytest.raises(ConfigError, match="disk_size is the boot disk's size in GB"):
        rh.ondemand_cluster(name="spec-test", disk_size="big")


def test_memory_row():
    assert resources(instance_type="CPU:2", memory="32+").memory == "32+"
    assert resources(instance_type="CPU:2", memory=64).memory == "64"


def test_ports_row_adds_a_direct_servers_port():
    assert resources(instance_type="CPU:2", open_ports=[8080, "9000-9010"]).ports == [
        "8080", "9000-9010"]
    r = resources(instance_type="CPU:2", open_ports=[443], server_connection_type="tls",
                  den_auth=True)
    assert r.ports == ["443", "32300"]
    with pytest.raises(ConfigError, match="open_ports takes ports and ranges"):
        rh.ondemand_cluster(name="spec-test", open_ports=["https"])


def test_labels_row_marks_the_cluster_as_rhs():
    assert resources(instance_type="CPU:2").labels == {"rh-cluster": "spec-test"}


# ------------------------------------------------------------------ the task

def test_task_has_the_nodes_resources_run_and_vpc():
    """``sky.Task`` from the task's YAML form: SkyPilot's own schema check runs."""
    c = rh.ondemand_cluster(name="spec-test", instance_type="A10G:1", provider="aws",
                            num_nodes=2, vpc_name="my-vpc")
    task = spec.to_task(c, run="echo hi")
    assert task.num_nodes == 2
    assert task.run == "echo hi"
    (r,) = task.resources
    assert r.accelerators == {"A10G": 1} and str(r.cloud) == "AWS"
    # SkyPilot keeps a task's `config:` as the cluster's config overrides.
    assert task.to_yaml_config()["resources"]["_cluster_config_overrides"] == {
        "aws": {"vpc_name": "my-vpc"}}


def test_vpc_name_needs_aws_or_gcp():
    c = rh.ondemand_cluster(name="spec-test", provider="azure", vpc_name="v")
    with pytest.raises(ConfigError, match="vpc_name= needs provider='aws' or provider='gcp'"):
        spec.to_task(c)


def test_no_deprecated_sky_arguments():
    """Only current ``sky.Resources`` arguments: ``infra``, never ``cloud``/``region``/``zone``."""
    c = rh.ondemand_cluster(name="spec-test", instance_type="A10G:1", provider="gcp",
                            region="us-central1", zone="us-central1-a")
    kwargs = spec.resources_kwargs(c)
    assert kwargs["infra"] == "gcp/us-central1/us-central1-a"
    assert not {"cloud", "region", "zone"} & set(kwargs)
