"""The store's JSON API over real HTTP, each test over SQLite and over a real PostgreSQL:
versions and conflicts, access (existence never leaks), sharing with users, groups and by
email, visibility, tokens (why one is refused), groups, and bad input answered with 4xx."""

from __future__ import annotations

import time

import pytest

FN = {"resource_type": "function", "qualname": "summer"}


def put(client, path, config, base=None, **extra):
    return client.put(f"/v1/resources/{path}", json={"config": config, "base_version": base,
                                                      **extra})


def test_versions_conflicts_and_history(store):
    alice, ta = store.user("alice")
    a = store.http(ta)
    assert put(a, f"{alice}/summer", {**FN, "v": 1}).json() == {
        "name": f"@/{alice}/summer", "version": 1, "changed": True}
    # A save that changes nothing makes no version.
    assert put(a, f"{alice}/summer", {**FN, "v": 1}, base=1).json()["changed"] is False
    assert put(a, f"{alice}/summer", {**FN, "v": 2}, base=1).json()["version"] == 2
    # Starting from version 1 again: refused, naming both versions.
    late = put(a, f"{alice}/summer", {**FN, "v": 3}, base=1)
    assert late.status_code == 409
    error = late.json()["error"]
    assert (error["kind"], error["base_version"], error["latest"]) == ("conflict", 1, 2)
    assert "version 2" in error["message"] and "version 1" in error["message"]
    # Written afresh (not loaded) it becomes the next version; nothing is lost.
    assert put(a, f"{alice}/summer", {**FN, "v": 3}).json()["version"] == 3
    history = a.get(f"/v1/history/{alice}/summer").json()
    assert [h["version"] for h in history] == [3, 2, 1]
    assert {h["author"] for h in history} == {alice}
    assert all(h["timestamp"].endswith("Z") for h in history)
    assert a.get(f"/v1/resources/{alice}/summer", params={"version": 2}).json()["config"]["v"] == 2
    missing = a.get(f"/v1/resources/{alice}/summer", params={"version": 9})
    assert missing.status_code == 404 and "versions are 1 to 3" in missing.text


def test_private_resources_do_not_leak_and_shares_give_access(store):
    alice, ta = store.user("alice")
    bob, tb = store.user("bob", email=True)
    a, b, anon = store.http(ta), store.http(tb), store.http()
    put(a, f"{alice}/secret-fn", FN)
    put(a, f"{alice}/shared-fn", FN)
    for client in (b, anon):
        for path in (f"{alice}/secret-fn", f"{alice}/no-such-thing"):
            r = client.get(f"/v1/resources/{path}")
            assert r.status_code == 404  # the same answer whether it exists or not
            assert r.json()["error"]["message"] == f"no resource @/{path} that you can see"
    # Shared by email address, read: bob loads it, sees it listed, cannot change it.
    r = a.post(f"/v1/shares/{alice}/shared-fn", json={"principals": [f"{bob}@example.com"],
                                                      "access_level": "read"})
    assert r.json()["shares"] == [{"principal": bob, "kind": "user", "access_level": "read"}]
    assert b.get(f"/v1/resources/{alice}/shared-fn").json()["config"] == FN
    names = [r["name"] for r in b.get(f"/v1/folders/{alice}").json()["resources"]]
    assert names == [f"@/{alice}/shared-fn"]
    assert [s["name"] for s in b.get("/v1/shared").json()] == [f"@/{alice}/shared-fn"]
    denied = put(b, f"{alice}/shared-fn", {**FN, "by": bob})
    assert denied.status_code == 403 and "access_level='write'" in denied.text
    # Write: bob saves a new version; then revoked: not found again.
    a.post(f"/v1/shares/{alice}/shared-fn", json={"principals": [bob], "access_level": "write"})
    assert put(b, f"{alice}/shared-fn", {**FN, "by": bob}).json()["version"] == 2
    assert a.get(f"/v1/history/{alice}/shared-fn").json()[0]["author"] == bob
    a.post(f"/v1/revoke/{alice}/shared-fn", json={"principals": [bob]})
    assert b.get(f"/v1/resources/{alice}/shared-fn").status_code == 404


def test_visibility_public_and_unlisted(store):
    alice, ta = store.user("alice")
    _, tb = store.user("bob")
    a, b, anon = store.http(ta), store.http(tb), store.http()
    put(a, f"{alice}/pub", FN)
    put(a, f"{alice}/unl", FN)
    a.post(f"/v1/shares/{alice}/pub", json={"visibility": "public"})
    a.post(f"/v1/shares/{alice}/unl", json={"visibility": "unlisted"})
    for client in (b, anon):  # public: loaded and listed without a token
        assert client.get(f"/v1/resources/{alice}/pub").status_code == 200
        assert client.get(f"/v1/resources/{alice}/unl").status_code == 200  # by exact name
        listed = [r["name"] for r in client.get(f"/v1/folders/{alice}").json()["resources"]]
        assert listed == [f"@/{alice}/pub"]  # unlisted ones never are
    assert put(anon, f"{alice}/pub", FN).status_code == 401
    assert put(b, f"{alice}/pub", {**FN, "x": 1}).status_code == 403
    listed = [r["name"] for r in a.get(f"/v1/folders/{alice}").json()["resources"]]
    assert listed == [f"@/{alice}/pub", f"@/{alice}/unl"]  # the owner sees both


def test_groups_share_and_group_folders(store):
    alice, ta = store.user("alice")
    bob, tb = store.user("bob")
    carol, tc = store.user("carol")
    team = f"team{int(time.time() * 1000) % 10**8}"
    r = store.admin.post("/v1/groups", json={"name": team, "members": [alice, bob]})
    assert r.status_code == 201 and r.json()["members"] == sorted([alice, bob])
    a, b, c = store.http(ta), store.http(tb), store.http(tc)
    # A group's folder: its members write it, others do not see into it.
    assert put(b, f"{team}/shared-model", FN).json()["version"] == 1
    assert put(a, f"{team}/shared-model", {**FN, "x": 1}, base=1).json()["version"] == 2
    assert c.get(f"/v1/resources/{team}/shared-model").status_code == 404
    assert put(c, f"{team}/mine", FN).status_code == 403
    # Sharing with a group gives its members the group's access.
    put(c, f"{carol}/tool", FN)
    c.post(f"/v1/shares/{carol}/tool", json={"principals": [team], "access_level": "read"})
    assert a.get(f"/v1/resources/{carol}/tool").status_code == 200
    assert b.get(f"/v1/resources/{carol}/tool").status_code == 200
    # Only admins make groups; a non-admin is told so.
    r = a.post("/v1/groups", json={"name": "mine", "members": []})
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]


def test_tokens_say_why_they_are_refused(store):
    name, token = store.user("tok")
    me = store.http(token)
    made = me.post("/v1/tokens", json={"name": "ci", "expires": "1s"}).json()
    assert made["token"].startswith("rhd_") and made["expires"]
    listed = me.get("/v1/tokens").json()
    assert {t["name"] for t in listed} == {"default", "ci"}
    assert all("token" not in t and "hash" not in t for t in listed)
    time.sleep(1.2)
    expired = store.http(made["token"]).get("/v1/whoami")
    assert expired.status_code == 401
    assert expired.json()["error"]["kind"] == "token_expired" and "expired at" in expired.text
    second = me.post("/v1/tokens", json={"name": "laptop"}).json()
    me.delete(f"/v1/tokens/{second['id']}")
    revoked = store.http(second["token"]).get("/v1/whoami")
    assert revoked.json()["error"]["kind"] == "token_revoked" and "laptop" in revoked.text
    rotated = me.post(f"/v1/tokens/{made['id']}/rotate")
    assert rotated.status_code == 201
    third = me.post("/v1/tokens", json={"name": "rot"}).json()
    new = me.post(f"/v1/tokens/{third['id']}/rotate").json()
    assert store.http(third["token"]).get("/v1/whoami").status_code == 401
    assert store.http(new["token"]).get("/v1/whoami").json()["user"] == name
    unknown = store.http("rhd_" + "x" * 43).get("/v1/whoami")
    assert unknown.json()["error"]["kind"] == "token_unknown"
    assert store.http().get("/v1/whoami").status_code == 401


@pytest.mark.parametrize("body, status, words", [
    ({"principals": ["nobody-here"], "access_level": "read"}, 404, "no user or group"),
    ({"principals": ["x"], "access_level": "admin"}, 400, "access_level"),
    ({"visibility": "everyone"}, 400, "visibility"),
    ({"principals": "bob"}, 400, "principals"),
])
def test_bad_shares(store, body, status, words):
    alice, ta = store.user("alice")
    a = store.http(ta)
    put(a, f"{alice}/f", FN)
    r = a.post(f"/v1/shares/{alice}/f", json=body)
    assert r.status_code == status and words in r.json()["error"]["message"]


def test_bad_names_and_bodies_are_4xx(store):
    alice, ta = store.user("alice")
    a = store.http(ta)
    assert put(a, f"{alice}/.hidden", FN).status_code == 400
    assert put(a, "nofolder", FN).status_code == 400
    assert a.put(f"/v1/resources/{alice}/x", content=b"{not json").status_code == 400
    assert a.put(f"/v1/resources/{alice}/x", json={"config": []}).status_code == 400
    assert a.put(f"/v1/resources/{alice}/x", json={"config": {}, "extra": 1}).status_code == 400
    assert put(a, f"{alice}/x", {"no": "type"}).status_code == 400
    big = {"resource_type": "blob", "data": "x" * (9 * 1024 * 1024)}
    assert put(a, f"{alice}/big", big).status_code == 413
    r = a.get("/v1/nothing-here")
    assert r.status_code == 404 and "openapi.json" in r.text
    assert a.get("/v1/authorize").status_code == 400


def test_loads_see_what_another_process_wrote(sqlite_store):
    """A store on SQLite keeps its latest-version reads in memory (rh_den.reads); a write to
    the file by another process (here a plain sqlite3 client, as a restore or a second tool
    would) is seen by the very next load, in either direction."""
    import sqlite3
    import subprocess
    import sys

    alice, ta = sqlite_store.user("alice")
    a, anon = sqlite_store.http(ta), sqlite_store.http()
    put(a, f"{alice}/flip", FN)
    assert anon.get(f"/v1/resources/{alice}/flip").status_code == 404
    assert a.get(f"/v1/resources/{alice}/flip").json()["visibility"] == "private"

    def visibility(value: str) -> None:
        # Another process, and a write transaction that waits for the store's writer.
        code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=30); "
                "c.execute('update resources set visibility = ? where path = ?', "
                "(sys.argv[2], sys.argv[3])); c.commit()")
        subprocess.run([sys.executable, "-c", code, sqlite_store.db, value, f"{alice}/flip"],
                       check=True)

    visibility("public")
    assert anon.get(f"/v1/resources/{alice}/flip").json()["config"] == FN
    visibility("private")
    assert anon.get(f"/v1/resources/{alice}/flip").status_code == 404
    with sqlite3.connect(sqlite_store.db) as c:  # and a new version written outside
        c.execute("update versions set config = ? where path = ?", ('{"resource_type":"function",'
                  '"qualname":"other"}', f"{alice}/flip"))
    assert a.get(f"/v1/resources/{alice}/flip").json()["config"]["qualname"] == "other"


def test_quick_loads_answer_as_the_api_does(sqlite_store):
    """The latest version is answered before Starlette's routing (rh_den.api.QuickLoads): the
    same answers, headers and errors as the route's, which still answers version=N."""
    alice, ta = sqlite_store.user("alice")
    a = sqlite_store.http(ta)
    put(a, f"{alice}/q", {**FN, "text": "é ✓"})
    r = a.get(f"/v1/resources/{alice}/q")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["config"]["text"] == "é ✓" and r.json()["version"] == 1
    assert a.get(f"/v1/resources/{alice}/q", params={"version": 1}).json() == r.json()
    bad = sqlite_store.http().get(f"/v1/resources/{alice}/q",
                                  headers={"Authorization": "Basic x"})
    assert bad.status_code == 401 and "Bearer <token>" in bad.json()["error"]["message"]
    unknown = sqlite_store.http("rhd_not-a-token").get(f"/v1/resources/{alice}/q")
    assert unknown.status_code == 401 and unknown.json()["error"]["kind"] == "token_unknown"
    name = a.get(f"/v1/resources/{alice}/bad%20name")
    assert name.status_code == 400 and "bad name" in name.json()["error"]["message"]
    assert a.get(f"/v1/resources/{alice}/q", params={"version": 0}).status_code == 400
