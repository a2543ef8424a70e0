"""What users bring from Runhouse to classes on a cluster: private attributes read like others,
attributes set on the cluster, fetch, classmethods and staticmethods on the class itself,
renaming a served class; and run_async on every call. On the real local cluster."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import userfns

import rh_core as rh


@pytest.fixture(scope="module")
def RemoteBox(local):
    return rh.module(userfns.Box).to(local, name="Box")


def test_private_attributes_are_readable_like_others(RemoteBox):
    box = RemoteBox(3, name="box_private")
    assert box._secret == "inside"
    assert box.fetch("_secret") == "inside"
    with pytest.raises(rh.RemoteAttributeError, match="no public attribute '_hidden'"):
        box._hidden  # noqa: B018 - a private method is not reachable
    with pytest.raises(AttributeError, match="no public method or attribute 'nope'"):
        box.nope  # noqa: B018
    assert not hasattr(box, "nope")  # an AttributeError, as Python expects


def test_setting_an_attribute_sets_it_on_the_cluster(RemoteBox, local):
    box = RemoteBox(2, name="box_set")
    box.size = 20
    assert box.volume() == 8000
    url = local.client().info.base_url
    assert httpx.get(f"{url}/box_set/size").json() == 20  # the served object shows it over HTTP
    box._note = "kept"
    assert box.fetch("_note") == "kept"


def test_setting_an_attribute_needs_write_access(local, RemoteBox):
    RemoteBox(1, name="box_guarded")
    url = local.client().info.base_url
    r = httpx.post(f"{url}/box_guarded/rh.setattr", json=["size", 99])
    assert r.status_code == 401 and r.json()["error"]["kind"] == "auth"
    assert httpx.get(f"{url}/box_guarded/size").json() == 1


def test_fetch_and_fetch_async_return_an_attributes_value(RemoteBox):
    box = RemoteBox(4, name="box_fetch")
    assert box.fetch("size") == 4
    assert asyncio.run(box.fetch_async("size")) == 4
    with pytest.raises(rh.RemoteAttributeError, match="'missing'"):
        box.fetch("missing")
    with pytest.raises(TypeError, match="volume is a method: call it"):
        box.fetch("volume")


def test_classmethods_and_staticmethods_run_on_the_remote_class(RemoteBox):
    assert RemoteBox.area(3, 4) == 12
    assert RemoteBox.cube_unit(2) == "2cm^3"
    assert RemoteBox.area.remote(5, 6).result() == 30
    with pytest.raises(AttributeError, match="create an instance first"):
        RemoteBox.volume  # noqa: B018 - an instance method needs an instance


def test_rename_serves_the_class_under_the_new_name_and_instances_keep_working(local):
    Remote = rh.module(userfns.Box).to(local, name="BoxOld")
    box = Remote(5, name="box_renamed")
    Remote.rename("BoxNew")
    assert Remote.served_as == "BoxNew"
    keys = local.keys()
    assert "BoxNew" in keys and "BoxOld" not in keys
    assert box.volume() == 125  # made before the rename
    assert Remote(2, name="box_after").volume() == 8  # made after, through the new name
    with pytest.raises(rh.NameClashError, match="already served"):
        rh.module(userfns.Box).to(local, name="BoxTaken").rename("BoxNew")


def test_renamed_class_instances_come_back_after_a_restart(own_cluster):
    Remote = rh.module(userfns.Box).to(own_cluster, name="BoxA")
    Remote(3, name="box_kept")
    Remote.rename("BoxB")
    own_cluster.restart_server()
    assert sorted(own_cluster.keys()) == ["BoxB", "box_kept"]
    assert rh.module(userfns.Box).to(own_cluster, name="BoxB")(1, name="x").volume() == 1
    assert own_cluster.client().call("box_kept", "volume") == 27


def test_run_async_on_every_call(local):
    add = rh.function(userfns.add).to(local)
    awaitable = add(1, 2, run_async=True)
    assert asyncio.iscoroutine(awaitable) and asyncio.run(awaitable) == 3
    assert add(1, 2) == 3 and add(1, 2, run_async=False) == 3
    double = rh.function(userfns.async_double).to(local)
    assert double(4, run_async=False) == 8
    assert asyncio.run(double(4)) == 8
    box = rh.module(userfns.Box).to(local, name="Box")(2, name="box_async")
    assert asyncio.run(box.volume(run_async=True)) == 8
    counter = rh.module(userfns.Counter).to(local)(0, name="counter_async")
    assert list(counter.countdown(2)) == [2, 1]

    async def collect():
        return [i async for i in counter.countdown(3, run_async=True)]

    assert asyncio.run(collect()) == [3, 2, 1]
