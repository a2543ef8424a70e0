"""A local cluster with ``den_auth`` that accepts the store's tokens: a real rh server asks a
real store (both over loopback HTTP) whether a colleague's token may call a function, from the
shares of the function's ``@`` name or of the cluster's own; revokes take effect within the
cache time; a store that is down refuses tokens it has not judged (503 naming its URL)."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import Store

import rh_core as rh


def summer(a, b):
    return a + b


def product(a, b):
    return a * b


def call(cluster, name, token, **args):
    url = cluster.client().info.base_url
    return httpx.get(f"{url}/{name}/call", params=args,
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def den_cluster(sqlite_store, rh_home):
    """alice's den_auth cluster ``@/<alice>/denc`` serving summer (saved as ``@/<alice>/summer``)
    and product (not saved)."""
    alice, token = sqlite_store.user("alice")
    rh.login(sqlite_store.url, token)
    cluster = rh.cluster(name="denc", provider="local", den_auth=True, den_cache_seconds=10)
    try:
        f = rh.function(summer).to(cluster)
        f.save(f"@/{alice}/summer")
        rh.function(product).to(cluster)
        yield alice, cluster, f
    finally:
        cluster.down()
        rh.logout()


def test_shares_decide_calls(den_cluster, sqlite_store):
    alice, cluster, f = den_cluster
    bob, tb = sqlite_store.user("bob")
    carol, tc = sqlite_store.user("carol")
    _, ta = sqlite_store.user("stranger")
    f.share([bob], access_level="read")
    assert call(cluster, "summer", tb, a=1, b=2).json() == 3
    refused = call(cluster, "product", tb, a=2, b=3)  # shared: summer only
    assert refused.status_code == 403 and "product" in refused.text
    assert call(cluster, "summer", ta, a=1, b=2).status_code == 403
    # Read on the cluster's own name: every function on it.
    cluster.save(f"@/{alice}/denc")
    cluster.share([carol], access_level="read")
    assert call(cluster, "product", tc, a=2, b=3).json() == 6
    # Reading the server's log needs write on the cluster.
    url = cluster.client().info.base_url
    logs = httpx.get(f"{url}/logs", headers={"Authorization": f"Bearer {tc}"}, timeout=30)
    assert logs.status_code == 403
    cluster.share([carol], access_level="write")
    time.sleep(10.5)  # the earlier answer about carol may be kept for den_cache_seconds
    logs = httpx.get(f"{url}/logs", headers={"Authorization": f"Bearer {tc}"}, timeout=30)
    assert logs.status_code == 200


def test_revoke_takes_effect_within_the_cache_time(den_cluster, sqlite_store):
    alice, cluster, f = den_cluster
    dave, td = sqlite_store.user("dave")
    f.share([dave])
    assert call(cluster, "summer", td, a=2, b=2).json() == 4
    f.revoke([dave])
    started = time.monotonic()
    while call(cluster, "summer", td, a=2, b=2).status_code == 200:
        assert time.monotonic() - started < 12, "the revoke did not take effect in 10 s"
        time.sleep(0.5)
    assert call(cluster, "summer", td, a=2, b=2).status_code == 403


def test_bad_store_tokens_say_why(den_cluster, sqlite_store):
    _, cluster, _ = den_cluster
    r = call(cluster, "summer", "rhd_" + "q" * 43, a=1, b=1)
    assert r.status_code == 401 and "not known to this store" in r.text
    assert sqlite_store.url in r.text
    assert den_cluster[2](5, 6) == 11  # the owner's token is never sent to the store


def test_a_store_that_is_down_fails_closed(rh_home, tmp_path, sqlite_store):
    own = Store(str(tmp_path / "own.sqlite"), tmp_path)
    try:
        alice, ta = own.user("alice")
        bob, tb = own.user("bob")
        rh.login(own.url, ta)
        cluster = rh.cluster(name="downc", provider="local", den_auth=True)
        try:
            f = rh.function(summer).to(cluster)
            f.save(f"@/{alice}/summer")
            f.share([bob])
            assert call(cluster, "summer", tb, a=1, b=1).json() == 2
            own.stop()
            # A token the store never judged is refused, naming the store...
            r = call(cluster, "summer", ta, a=1, b=1)
            assert r.status_code == 503 and own.url in r.text and "does not answer" in r.text
            # ...while bob's answer, judged a moment ago, holds for the cache time.
            assert call(cluster, "summer", tb, a=1, b=1).json() == 2
        finally:
            cluster.down()
    finally:
        rh.logout()
        if own.proc.poll() is None:
            own.stop()
