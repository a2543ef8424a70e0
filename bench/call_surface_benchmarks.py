"""Benchmarks of the call surface: run_async against a plain call, how soon a cancel stops a
sleeping call, and cluster.get of a 64 MiB array against the same echo by call."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

from common import ECHO_BYTES, FIGURES, MIB, server_loop, summary  # noqa: I001 - bench/ is on sys.path


def bench_run_async(ctx: dict, calls: int) -> list[dict]:
    """The same trivial call, plain and with run_async=True awaited in a running event loop,
    in alternating blocks."""
    f = ctx["f"]

    async def measure() -> dict[str, list[float]]:
        perf = time.perf_counter
        out = {"plain": [], "async": []}
        for _ in range(50):  # warm up both paths
            f(1)
            await f(1, run_async=True)
        done = 0
        while done < calls:
            n = min(100, calls - done)
            for _ in range(n):
                t0 = perf()
                f(1)
                out["plain"].append(perf() - t0)
            for _ in range(n):
                t0 = perf()
                await f(1, run_async=True)
                out["async"].append(perf() - t0)
            done += n
        return out

    t = asyncio.run(measure())
    base = summary(t["plain"])
    return [{"key": "run_async", "figure": FIGURES["run_async"],
             "ours": statistics.median(t["async"]), "baseline": base["median"], "unit": "s",
             "baseline_name": "the same call without run_async",
             "samples": {"run_async": summary(t["async"]), "plain": base},
             "details": {"calls": calls}}]


def bench_cancel(ctx: dict, repeats: int) -> list[dict]:
    """Time from handle.cancel() until the sleeping call no longer runs anywhere: for time.sleep
    its worker process is gone (replaced after the grace period); for asyncio.sleep, the run is
    over. Each on a cluster of its own, so the main one keeps its workers."""
    from workloads import async_sleeper, sleeper

    import rh_core as rh

    c = rh.cluster(name="bench-cancel", provider="local")
    try:
        blocked, awaited = [], []
        for fn, out in ((sleeper, blocked), (async_sleeper, awaited)):
            remote = rh.function(fn).to(c)
            for _ in range(repeats):
                pid = c.status()["envs"]["base"]["workers"][0]["pid"]
                handle = remote.remote(600)
                while not any(r["run_key"] == handle.run_key and r["status"] == "running"
                              for r in c.runs()):
                    time.sleep(0.005)
                time.sleep(0.05)  # it is in the worker now
                t0 = time.perf_counter()
                handle.cancel()
                if fn is sleeper:
                    while _alive(pid):
                        time.sleep(0.002)
                out.append(time.perf_counter() - t0)
                remote(0, run_async=False)  # the env is up again before the next round
    finally:
        c.down()
    return [{"key": "cancel_sleep", "figure": FIGURES["cancel_sleep"],
             "ours": statistics.median(blocked), "baseline": None, "unit": "s",
             "samples": {"time.sleep": summary(blocked), "asyncio.sleep": summary(awaited)},
             "details": {"asyncio_sleep_median_s": statistics.median(awaited)}}]


def bench_object_get(ctx: dict, repeats: int) -> list[dict]:
    """cluster.get of a 64 MiB array kept on the cluster, against the same array echoed by a
    call (both through shared memory on the local cluster)."""
    import numpy as np

    cluster, f = ctx["cluster"], ctx["f"]
    arr = np.ones(ECHO_BYTES, dtype=np.uint8)
    cluster.put("bench-array", arr)
    gets, echoes = [], []
    try:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            got = cluster.get("bench-array")
            dt = time.perf_counter() - t0
            if got.nbytes != ECHO_BYTES or got[0] != 1:
                raise AssertionError("cluster.get returned another array")
            t1 = time.perf_counter()
            back = f(arr)
            de = time.perf_counter() - t1
            if back.nbytes != ECHO_BYTES:
                raise AssertionError("the echo returned another array")
            del got, back
            if i:  # the first round warms up
                gets.append(dt)
                echoes.append(de)
    finally:
        cluster.delete("bench-array")
    mib = ECHO_BYTES / MIB
    return [{"key": "object_get", "figure": FIGURES["object_get"],
             "ours": mib / statistics.median(gets), "baseline": mib / statistics.median(echoes),
             "unit": "MiB/s", "baseline_name": "the same array echoed by a call (both ways)",
             "samples": {"get": summary(gets), "echo": summary(echoes)}}]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def bench_ray(ctx: dict, calls: int, items: int) -> list[dict]:
    """A trivial call against a Ray actor call, and a map against Ray tasks doing the same work,
    in one run, on a Ray instance of its own (its own temp folder; ray.shutdown() stops what
    it started). Needs Ray: pip install 'rh-core[ray]'."""
    try:  # Ray is optional and takes seconds to import
        import ray
    except ImportError:
        raise RuntimeError("Ray is not installed (pip install 'rh-core[ray]'): no Ray "
                           "figures") from None
    from common import interleaved
    from workloads import trivial

    f = ctx["f"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=str(ctx["workdir"] / "ray"))
    try:
        @ray.remote
        class Echo:
            def f(self, x):
                return x

        actor = Echo.remote()
        ray.get(actor.f.remote(1))
        task = ray.remote(trivial)
        t = interleaved({"ours": lambda: f(1), "ray": lambda: ray.get(actor.f.remote(1))},
                        calls)
        ray_map, our_map = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            ray.get([task.remote(i) for i in range(items)])
            ray_map.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            f.map(list(range(items)))
            our_map.append(time.perf_counter() - t0)
    finally:
        ray.shutdown()
    base = summary(t["ray"])
    return [{"key": "latency_ray", "figure": FIGURES["latency_ray"],
             "ours": statistics.median(t["ours"]), "baseline": base["median"], "unit": "s",
             "baseline_name": "Ray actor call (actor.f.remote + ray.get), same machine",
             "samples": {"ours": summary(t["ours"]), "ray actor": base}},
            {"key": "map_ray", "figure": FIGURES["map_ray"],
             "ours": items / statistics.median(our_map), "baseline":
                 items / statistics.median(ray_map), "unit": "items/s",
             "baseline_name": f"Ray tasks, {items:,} of them, ray.get of all"}]


def bench_concurrency(ctx: dict, clients: int, calls: int) -> list[dict]:
    """``clients`` threads making ``calls`` trivial calls each through one rh client (its pool
    of connections), against the same number of threads each POSTing to the bare echo with its
    own keep-alive ``http.client`` connection. Throughput, p50/p99, errors."""
    import http.client
    import threading

    from common import Baseline

    from rh_core.transport import wire

    f = ctx["f"]
    body = wire.joined(wire.dumps_pickle(((1,), {})))

    def run(make_call) -> tuple[float, list[float], int]:
        times: list[float] = []
        errors = [0]
        lock = threading.Lock()
        start = threading.Barrier(clients + 1)

        def worker():
            call, mine = make_call(), []
            start.wait()
            for _ in range(calls):
                t0 = time.perf_counter()
                try:
                    call()
                except Exception:  # noqa: BLE001 - counted, reported
                    with lock:
                        errors[0] += 1
                mine.append(time.perf_counter() - t0)
            with lock:
                times.extend(mine)

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        return time.perf_counter() - t0, times, errors[0]

    def ours():
        def call():
            if f(1) != 1:
                raise AssertionError("wrong answer")
        return call

    with Baseline("http", ctx["workdir"], server_loop(Path(os.environ["RH_HOME"]))) as srv:
        def echo():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port)

            def call():
                conn.request("POST", "/echo", body=body,
                             headers={"Content-Type": wire.PICKLE_CT})
                r = conn.getresponse()
                if r.status != 200 or r.read() != body:
                    raise AssertionError("wrong echo")
            return call

        base_s, base_t, base_err = run(echo)
    ours_s, ours_t, ours_err = run(ours)
    if ours_err or base_err:
        raise AssertionError(f"{ours_err} of our calls and {base_err} echoes failed")
    n = clients * calls
    q = lambda ts, p: sorted(ts)[int(p * (len(ts) - 1))]  # noqa: E731
    return [{"key": "concurrency", "figure": FIGURES["concurrency"],
             "ours": n / ours_s, "baseline": n / base_s, "unit": "calls/s",
             "baseline_name": f"bare echo, {clients} threads with http.client keep-alive",
             "samples": {"ours": summary(ours_t), "echo": summary(base_t)},
             "details": {"clients": clients, "calls_each": calls, "errors": 0,
                         "p50_ms": q(ours_t, 0.5) * 1e3, "p99_ms": q(ours_t, 0.99) * 1e3,
                         "echo_p50_ms": q(base_t, 0.5) * 1e3,
                         "echo_p99_ms": q(base_t, 0.99) * 1e3}}]


def bench_memory(ctx: dict, calls: int) -> list[dict]:
    """RSS of the server and of its env worker idle, after ``calls`` trivial calls, and after
    as many again: the growth of the second half shows a leak."""
    f, cluster = ctx["f"], ctx["cluster"]
    status = cluster.status()
    server = cluster.client().health()["pid"]
    worker = status["envs"]["base"]["workers"][0]["pid"]

    def rss() -> tuple[float, float]:
        return _rss(server), _rss(worker)

    idle = rss()
    for _ in range(calls):
        f(1)
    first = rss()
    for _ in range(calls):
        f(1)
    second = rss()
    return [{"key": "memory", "figure": FIGURES["memory"],
             "ours": (second[0] - first[0]) + (second[1] - first[1]), "baseline": None,
             "unit": "MiB",
             "details": {"server_idle_mib": idle[0], "server_after_mib": second[0],
                         "worker_idle_mib": idle[1], "worker_after_mib": second[1],
                         "calls_per_half": calls}}]


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no RSS for process {pid}")
