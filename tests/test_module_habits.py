"""What users bring from Runhouse to classes on a cluster: private attributes read like others,
attributes set on the cluster, fetch, classmethods and staticmethods on the class itself,
renaming a served class; and run_async on every call. On the real local cluster."""

from __future__ import annotations

import asyncio
import time

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


def test_awaited_calls_share_the_loop_and_run_concurrently(local):
    """Awaited calls go out on the event loop's own connections (no thread each): many at once
    on one loop meet on the cluster, errors arrive with their remote type, a large argument takes
    the threaded path, and a cancelled call is cancelled on the cluster too."""
    meet = rh.function(userfns.meet).to(local)
    boom = rh.function(userfns.boom).to(local)
    echo = rh.function(userfns.echo).to(local)
    wait = rh.function(userfns.wait_for_file).to(local)

    async def go():
        met = await asyncio.gather(*(meet(3, "awaited-meet", run_async=True) for _ in range(3)))
        with pytest.raises(ValueError, match="bad x 1"):
            await boom(1, run_async=True)
        big = b"x" * (3 << 20)
        assert await echo(big, run_async=True) == big
        again = await asyncio.gather(*(echo(i, run_async=True) for i in range(20)))
        task = asyncio.ensure_future(wait("/nonexistent/never", 30, run_async=True))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return met, again

    met, again = asyncio.run(go())
    assert met == ["awaited-meet"] * 3 and again == list(range(20))
    for _ in range(100):  # the server saw the connection close and cancelled the call
        listed = [r for r in local.runs() if r["name"] == "wait_for_file"]
        if listed and listed[-1]["status"] == "cancelled":
            break
        time.sleep(0.1)
    assert listed[-1]["status"] == "cancelled"


def test_awaited_call_brings_a_stopped_local_server_back(own_cluster):
    """Nothing could be sent on the loop (the server is gone): the threaded path starts it
    again and the call is answered."""
    add = rh.function(userfns.add).to(own_cluster)
    assert asyncio.run(add(1, 2, run_async=True)) == 3
    own_cluster.provider.down()
    assert asyncio.run(add(2, 3, run_async=True)) == 5
