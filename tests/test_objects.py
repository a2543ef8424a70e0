"""Objects kept on a cluster under keys: put, get, keys, delete, and passing one by key to a
call there without a trip through the client. On the real local cluster."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import userfns

import rh_core as rh


def test_put_get_keys_delete(local):
    local.put("settings", {"lr": 0.1, "layers": [64, 64]})
    assert local.get("settings") == {"lr": 0.1, "layers": [64, 64]}
    rh.function(userfns.add).to(local)
    keys = local.keys()
    assert "settings" in keys and "add" in keys  # objects beside served names
    local.put("settings", {"lr": 0.2})  # replaced
    assert local.get("settings") == {"lr": 0.2}
    local.delete("settings")
    with pytest.raises(KeyError, match="key settings not found"):
        local.get("settings")
    assert local.get("settings", default=None) is None
    assert local.get("settings", default=7) == 7
    assert "settings" not in local.keys() and "add" in local.keys()


def test_an_object_passed_by_key_reaches_the_call_without_the_client(local):
    ref = local.put("rows", list(range(10)))
    total = rh.function(userfns.total).to(local)
    assert total(ref) == 45
    assert total(local.ref("rows")) == 45
    assert ref.get() == list(range(10))
    with pytest.raises(rh.ServerError, match="key nowhere not found") as info:
        total(local.ref("nowhere"))
    assert info.value.status == 404


def test_a_large_array_comes_back_through_shared_memory(local, monkeypatch):
    from rh_core.transport import shm

    arr = np.arange(8 << 20, dtype=np.float64)  # 64 MiB
    written, taken = [], []
    write, take = shm.write, shm.take
    monkeypatch.setattr(shm, "write", lambda folder, data: written.append(data.nbytes) or
                        write(folder, data))
    monkeypatch.setattr(shm, "take", lambda folder, name, size: taken.append(size) or
                        take(folder, name, size))
    local.put("big", arr)
    back = local.get("big")
    assert np.array_equal(back, arr) and back.flags.writeable
    assert written == [arr.nbytes] and taken == [arr.nbytes]  # in and out through /dev/shm
    assert list(Path(local.client().info.shm_dir).glob("b-*")) == []
    local.delete("big")


def test_putting_what_cannot_be_pickled_says_which(local):
    with pytest.raises(rh.SerializationError, match="the object put under 'lock' could not "
                                                     "be pickled"):
        local.put("lock", __import__("threading").Lock())
    assert local.get("lock", default=None) is None  # nothing half-kept


def test_objects_over_http(local):
    url = local.client().info.base_url
    owner = {"Authorization": local.client().http.headers["authorization"]}
    r = httpx.put(f"{url}/objects/config", json={"depth": 3}, headers=owner)
    assert r.status_code == 200 and r.json()["serialization"] == "json"
    assert httpx.get(f"{url}/objects/config").json() == {"depth": 3}
    assert local.get("config") == {"depth": 3}
    local.put("pickled", {1, 2})
    r = httpx.get(f"{url}/objects/pickled")
    assert r.status_code == 406 and "read it from Python" in r.json()["error"]["message"]
    r = httpx.put(f"{url}/objects/config", json={"depth": 4})
    assert r.status_code == 401  # putting needs write access
    listed = {o["key"]: o for o in httpx.get(f"{url}/objects").json()["objects"]}
    assert listed["pickled"]["serialization"] == "pickle" and listed["config"]["bytes"] > 0
