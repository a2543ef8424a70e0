"""Many writers at once, over SQLite and a real PostgreSQL: each one loads a resource, appends
its mark and saves from the version it loaded, retrying on a conflict. Every mark must be in
the last version (no update lost), each save a version of its own, and no request may fail."""

from __future__ import annotations

import concurrent.futures

WRITERS, SAVES = 8, 12


def test_no_update_is_lost(store):
    owner, token = store.user("race")
    path = f"/v1/resources/{owner}/counter"
    first = store.http(token).put(path, json={"config": {"resource_type": "table", "marks": []}})
    assert first.status_code == 200
    conflicts = []

    def writer(w: int) -> None:
        with store.http(token) as http:
            for i in range(SAVES):
                while True:
                    got = http.get(path)
                    assert got.status_code == 200, got.text
                    body = got.json()
                    config = body["config"]
                    config["marks"] = [*config["marks"], f"{w}-{i}"]
                    r = http.put(path, json={"config": config, "base_version": body["version"]})
                    if r.status_code == 409:
                        conflicts.append(r.json()["error"]["latest"])
                        continue
                    assert r.status_code == 200, r.text
                    break

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        for done in [pool.submit(writer, w) for w in range(WRITERS)]:
            done.result()
    final = store.http(token).get(path).json()
    assert sorted(final["config"]["marks"]) == sorted(
        f"{w}-{i}" for w in range(WRITERS) for i in range(SAVES))
    assert final["version"] == 1 + WRITERS * SAVES
    assert conflicts  # the writers did collide, and each collision was refused, not merged
