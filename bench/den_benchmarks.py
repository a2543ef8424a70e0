"""The shared store (rh-den): loading a resource against a local ``~`` load plus one keep-alive
round trip; a call let in by a cached store token against the owner's own token; many clients
saving, loading and sharing at once (errors, lost updates, p99)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ARG, FIGURES, interleaved, stop_pid, summary
from serving_benchmarks import _json_call

from rh_core.transport.lean import LeanPool


def _start_store(workdir: Path) -> tuple[subprocess.Popen, str, str]:
    """``rh den serve`` on a SQLite file in ``workdir``; its process, URL and an admin token."""
    try:
        import rh_den  # noqa: F401
    except ImportError:
        raise RuntimeError("the rh-den plugin is not installed (pip install -e plugins/rh-den): "
                           "no shared-store figures") from None
    rh = str(Path(sys.executable).parent / "rh")
    db, record = workdir / "den.sqlite", workdir / "den.json"
    token = subprocess.run([rh, "den", "user", "add", "bench", "--admin", "--db", str(db)],
                           capture_output=True, text=True, check=True).stdout.strip()
    log = open(workdir / "den.log", "ab")
    proc = subprocess.Popen([rh, "den", "serve", "--db", str(db), "--port", "0", "--record",
                             str(record)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while not (record.exists() and record.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("rh den serve did not start; see " + str(workdir / "den.log"))
        time.sleep(0.05)
    return proc, json.loads(record.read_text())["url"], token


def bench_den(ctx: dict, calls: int, clients: int, ops: int) -> list[dict]:
    import httpx

    import rh_core as rh

    proc, url, token = _start_store(ctx["workdir"])
    os.environ["RH_DEN_URL"], os.environ["RH_DEN_TOKEN"] = url, token
    secured = None
    try:
        rows = []
        # Loading: @ against ~ plus one keep-alive round trip to the same store.
        f = rh.function(ctx["trivial"], name="den-bench")
        f.save("~/den-bench")
        f.save("@/bench/den-bench")
        trip = LeanPool(url, True, {})  # the same keep-alive http.client transport as rh's
        try:
            def local_plus_trip():
                rh.load("~/den-bench")
                trip.request("GET", "/health")

            n = max(200, calls // 5)
            t = interleaved({"den": lambda: rh.load("@/bench/den-bench"), "base": local_plus_trip},
                            n, block=50, warmup=20)
        finally:
            trip.close()
        rows.append({"key": "den_load", "figure": FIGURES["den_load"],
                     "ours": statistics.median(t["den"]), "baseline": statistics.median(t["base"]),
                     "unit": "s", "samples": {k: summary(v) for k, v in t.items()},
                     "baseline_name": "a ~ load plus GET /health to the same store over a "
                                      "kept-alive http.client connection"})

        # A call let in by a cached store token vs the cluster owner's token.
        secured = rh.cluster(name="bench-den", provider="local", den_auth=True, den_url=url)
        g = rh.function(ctx["trivial"]).to(secured)
        g.save("@/bench/trivial")
        owner = secured.client().http.headers["authorization"]
        path = f"/trivial/call?x={ARG}"
        base = secured.client().info.base_url
        with httpx.Client(base_url=base, headers={"Authorization": owner}) as own, \
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as den:
            t = interleaved({"den": _json_call(den, path), "owner": _json_call(own, path)}, calls)
        rows.append({"key": "den_auth", "figure": FIGURES["den_auth"],
                     "ours": statistics.median(t["den"]), "baseline": statistics.median(t["owner"]),
                     "unit": "s", "baseline_name": "same JSON call with the cluster owner's token",
                     "samples": {k: summary(v) for k, v in t.items()}})

        rows += _concurrency(url, token, clients, ops)
        return rows
    finally:
        os.environ.pop("RH_DEN_URL", None)
        os.environ.pop("RH_DEN_TOKEN", None)
        if secured is not None:
            secured.down()
        stop_pid(proc.pid)


def _concurrency(url: str, admin: str, clients: int, ops: int) -> list[dict]:
    """``clients`` users at once, each doing ``ops`` of save / load / share on their own
    resources and on one they all update from the version they loaded (retrying conflicts)."""
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as http:
        users = [http.post("/v1/users", json={"name": f"c{i}"}).json() for i in range(clients)]
        http.put("/v1/resources/bench/shared", json={"config": {"resource_type": "table",
                                                                "marks": []}})
        http.post("/v1/shares/bench/shared", json={"principals": [u["user"] for u in users],
                                                   "access_level": "write"})
    times: list[float] = []
    errors: list[str] = []
    marks_sent = []

    conflicts = [0]

    def work(user: dict) -> None:
        name = user["user"]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {user['token']}"},
                          timeout=60) as c:
            def timed(method, path, **kw):
                t0 = time.perf_counter()
                r = c.request(method, path, **kw)
                times.append(time.perf_counter() - t0)
                if r.status_code >= 400 and r.status_code != 409:
                    errors.append(f"{method} {path}: {r.status_code} {r.text[:120]}")
                return r

            for i in range(ops):
                kind = i % 4
                if kind == 0:
                    timed("PUT", f"/v1/resources/{name}/r{i % 8}",
                          json={"config": {"resource_type": "function", "i": i}})
                elif kind == 1:
                    timed("GET", f"/v1/resources/{name}/r{(i - 1) % 8}")
                elif kind == 2:
                    timed("POST", f"/v1/shares/{name}/r{(i - 2) % 8}",
                          json={"principals": ["bench"], "access_level": "read"})
                else:  # everyone appends to one resource, from the version they loaded
                    while True:
                        got = timed("GET", "/v1/resources/bench/shared").json()
                        marks = [*got["config"]["marks"], f"{name}-{i}"]
                        r = timed("PUT", "/v1/resources/bench/shared", json={
                            "config": {"resource_type": "table", "marks": marks},
                            "base_version": got["version"]})
                        if r.status_code != 409:
                            break
                        conflicts[0] += 1
                    if r.status_code == 200:
                        marks_sent.append(f"{name}-{i}")

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, users))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as http:
        final = http.get("/v1/resources/bench/shared").json()["config"]["marks"]
    lost = len(set(marks_sent) - set(final))
    times.sort()
    p99 = times[int(0.99 * (len(times) - 1))]
    return [
        {"key": "den_concurrency_p99", "figure": FIGURES["den_concurrency_p99"], "ours": p99,
         "baseline": None, "unit": "s", "samples": {"requests": summary(times)},
         "details": {"clients": clients, "operations": clients * ops, "requests": len(times),
                     "conflicts_retried": conflicts[0]}},
        {"key": "den_concurrency_failures", "figure": FIGURES["den_concurrency_failures"],
         "ours": float(len(errors) + lost), "baseline": None, "unit": "",
         "details": {"errors": errors[:5], "lost_updates": lost}},
    ]
