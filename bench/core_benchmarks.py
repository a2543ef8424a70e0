"""The core benchmarks: latency, throughput, cold start, redeploy, map."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from common import (  # noqa: I001 - bench/ is on sys.path
    ARG,
    ECHO_BYTES,
    FIGURES,
    MAP_ITEMS,
    MIB,
    Baseline,
    interleaved,
    read_line,
    server_loop,
    stop_proc,
    stop_recorded_server,
    summary,
    timed,
)


def bench_latency(ctx: dict, calls: int) -> list[dict]:
    import http.client

    import httpx

    from rh_core.transport import wire

    f, client = ctx["f"], ctx["cluster"].client()
    body = wire.joined(wire.dumps_pickle(((ARG,), {})))  # the exact body f(ARG) sends
    loop = server_loop(Path(os.environ["RH_HOME"]))  # the echo runs on the server's loop
    with Baseline("http", ctx["workdir"], loop) as srv, \
            (Baseline("http", ctx["workdir"]) if loop != "asyncio" else nullcontext()) as std, \
            httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as hc:
        headers = {"Content-Type": wire.PICKLE_CT}
        lean = http.client.HTTPConnection("127.0.0.1", srv.port)
        std_conn = http.client.HTTPConnection("127.0.0.1", std.port) if std else None

        def ours():
            if f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value")

        def ours_json():
            r = client.http.get(f"/trivial/call?x={ARG}")
            if r.status_code != 200 or r.json() != ARG:
                raise AssertionError(f"GET /trivial/call answered {r.status_code}: {r.text[:200]}")

        def baseline():
            lean.request("POST", "/echo", body=body, headers=headers)
            r = lean.getresponse()
            if r.status != 200 or r.read() != body:
                raise AssertionError(f"baseline echo answered {r.status}")

        def baseline_std():
            std_conn.request("POST", "/echo", body=body, headers=headers)
            r = std_conn.getresponse()
            if r.status != 200 or r.read() != body:
                raise AssertionError(f"baseline echo (asyncio loop) answered {r.status}")

        def baseline_httpx():
            r = hc.post("/echo", content=body, headers=headers)
            if r.status_code != 200 or r.content != body:
                raise AssertionError(f"baseline echo answered {r.status_code}")

        paths = {"ours": ours, "json": ours_json, "baseline": baseline, "httpx": baseline_httpx}
        if std_conn is not None:
            paths["std"] = baseline_std
        t = interleaved(paths, calls)
        lean.close()
    base = summary(t["baseline"])
    httpx_base = summary(t["httpx"])
    rows = [
        {"key": "latency", "figure": FIGURES["latency"],
         "ours": statistics.median(t["ours"]), "baseline": base["median"], "unit": "s",
         "baseline_name": f"Starlette+Hypercorn echo ({loop} loop, as the rh server), "
                          f"http.client keep-alive",
         "samples": {"ours": summary(t["ours"]), "baseline": base},
         "details": {"calls": calls, "body_bytes": len(body), "loop": loop}},
        {"key": "latency_httpx", "figure": FIGURES["latency_httpx"],
         "ours": statistics.median(t["ours"]), "baseline": httpx_base["median"], "unit": "s",
         "baseline_name": "Starlette+Hypercorn echo, httpx keep-alive",
         "samples": {"httpx echo": httpx_base}},
        {"key": "latency_json", "figure": FIGURES["latency_json"],
         "ours": statistics.median(t["json"]), "baseline": base["median"], "unit": "s",
         "baseline_name": "Starlette+Hypercorn echo, http.client keep-alive",
         "samples": {"ours": summary(t["json"]), "baseline": base},
         "details": {"calls": calls, "request": f"GET /trivial/call?x={ARG}"}},
    ]
    if "std" in t:  # what the faster loop buys: rh on it against the echo on the stdlib loop
        std_base = summary(t["std"])
        rows.insert(1, {"key": "latency_std_loop", "figure": FIGURES["latency_std_loop"],
                        "ours": statistics.median(t["ours"]), "baseline": std_base["median"],
                        "unit": "s", "baseline_name": "Starlette+Hypercorn echo on the asyncio "
                                                      "loop, http.client keep-alive",
                        "samples": {"echo on asyncio": std_base}})
    return rows


def bench_throughput(ctx: dict, repeats: int) -> list[dict]:
    import numpy as np

    f = ctx["f"]
    arr = np.ones(ECHO_BYTES, dtype=np.uint8)

    def check(r):
        if not (isinstance(r, np.ndarray) and r.dtype == np.uint8 and r.nbytes == ECHO_BYTES
                and r[0] == 1 and r[-1] == 1):
            raise AssertionError("the 64 MiB echo came back wrong")

    def measure(f) -> list[float]:
        times = []
        for i in range(repeats + 1):  # the first one warms up (allocations, socket buffers)
            t0 = time.perf_counter()
            r = f(arr)
            dt = time.perf_counter() - t0
            check(r)
            if i == 0:
                if not np.array_equal(r, arr):
                    raise AssertionError("the 64 MiB echo came back with other bytes")
            else:
                times.append(dt)
            del r
        return times

    ours = measure(f)
    # The same echo on a second local cluster without shared memory: every byte goes through
    # HTTP and the worker socket, as it would to a remote cluster.
    import rh_core as rh

    os.environ["RH_SHM"] = "off"
    plain = rh.cluster(name="bench-http-only", provider="local")
    try:
        http_only = measure(rh.function(ctx["trivial"]).to(plain))
    finally:
        os.environ.pop("RH_SHM", None)
        plain.down()

    raw = []
    view = memoryview(arr).cast("B")
    back = bytearray(ECHO_BYTES)
    back_view = memoryview(back)
    head = bytearray(8)
    with Baseline("tcp", ctx["workdir"]) as srv, \
            socket.create_connection(("127.0.0.1", srv.port)) as sock:

        def read_exact(v: memoryview) -> None:
            got, n = 0, v.nbytes
            while got < n:
                k = sock.recv_into(v[got:], n - got)
                if k == 0:
                    raise ConnectionError("tcp echo server closed the connection")
                got += k

        def once():
            sock.sendall(struct.pack("!Q", ECHO_BYTES))
            sock.sendall(view)
            read_exact(memoryview(head))
            read_exact(back_view)

        for i in range(repeats + 1):
            dt = timed(once)
            if struct.unpack("!Q", head)[0] != ECHO_BYTES or back[0] != 1 or back[-1] != 1:
                raise AssertionError("the raw TCP echo came back wrong")
            if i:
                raw.append(dt)
    mibs = lambda t: 2 * ECHO_BYTES / MIB / t  # noqa: E731 - both directions count
    return [{"key": "throughput", "figure": FIGURES["throughput"],
             "ours": mibs(statistics.median(ours)), "baseline": mibs(statistics.median(raw)),
             "unit": "MiB/s", "baseline_name": "raw TCP echo, sendall/recv_into",
             "samples": {"ours_seconds": summary(ours), "baseline_seconds": summary(raw)},
             "details": {"bytes_each_way": ECHO_BYTES, "repeats": repeats}},
            {"key": "throughput_http", "figure": FIGURES["throughput_http"],
             "ours": mibs(statistics.median(http_only)), "baseline": mibs(statistics.median(raw)),
             "unit": "MiB/s", "baseline_name": "raw TCP echo, sendall/recv_into",
             "samples": {"ours_seconds": summary(http_only)}}]


COLD_CHILD = r"""
import time
t0 = time.perf_counter()
import rh_core as rh
t1 = time.perf_counter()

def trivial(x):
    return x

f = rh.function(trivial).to(rh.cluster("local"))
t2 = time.perf_counter()
r = f(1)
t3 = time.perf_counter()
assert r == 1, r
print("RESULT", r, t1 - t0, t2 - t1, t3 - t2, flush=True)
"""


def bench_cold_start(ctx: dict, repeats: int) -> list[dict]:
    times, parts = [], []
    for _ in range(repeats):
        home = Path(tempfile.mkdtemp(prefix="rh-bench-cold-"))
        env = dict(os.environ, RH_HOME=str(home))
        proc = None
        try:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", COLD_CHILD], env=env, cwd=str(home),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            line = read_line(proc, 60, "cold-start subprocess")
            dt = time.perf_counter() - t0
            fields = line.split()
            if fields[:2] != ["RESULT", "1"]:
                raise AssertionError(f"cold-start subprocess printed {line!r}")
            proc.wait(timeout=30)
            times.append(dt)
            imp, to, call = (float(x) for x in fields[2:5])
            parts.append({"rest": dt - imp - to - call, "import": imp, "to": to,
                          "first_call": call})
        except BaseException:
            if proc is not None and proc.stderr is not None and proc.poll() is not None:
                sys.stderr.write(proc.stderr.read().decode(errors="replace")[-3000:])
            raise
        finally:
            stop_proc(proc)
            stop_recorded_server(home)
            shutil.rmtree(home, ignore_errors=True)
    med = lambda k: statistics.median(p[k] for p in parts)  # noqa: E731
    return [{"key": "cold_start", "figure": FIGURES["cold_start"],
             "ours": statistics.median(times), "baseline": None, "unit": "s",
             "samples": {"ours": summary(times)},
             "details": {"repeats": repeats, "breakdown_median_s": {
                 "interpreter start and the rest": med("rest"),
                 "import rh_core": med("import"),
                 ".to() (starts server + worker)": med("to"),
                 "first call": med("first_call")}}}]


def bench_redeploy(ctx: dict, repeats: int) -> list[dict]:
    times = redeploy_times(ctx["cluster"], repeats)
    return [{"key": "redeploy", "figure": FIGURES["redeploy"],
             "ours": statistics.median(times), "baseline": None, "unit": "s",
             "samples": {"ours": summary(times)}, "details": {"repeats": repeats}}]


def redeploy_times(cluster, repeats: int) -> list[float]:
    """Times of ``.to()`` + first call after a one-line change of a module, ``repeats`` times."""
    import rh_core as rh

    code_dir = Path(tempfile.mkdtemp(prefix="rh-bench-code-"))
    modname = f"rh_bench_redeploy_{os.getpid()}"
    path = code_dir / f"{modname}.py"

    def write(value: int, mtime_ns: int) -> None:
        path.write_text(f'"""Redeploy benchmark code."""\n\n\ndef value():\n    return {value}\n')
        os.utime(path, ns=(mtime_ns, mtime_ns))

    # Every rewrite gets an mtime 2 s later than the last: the worker reloads on any mtime change,
    # but Python's .pyc check compares whole seconds (and size), so a sub-second bump of a
    # same-size file could legitimately run the stale bytecode.
    mtime = time.time_ns()
    write(0, mtime)
    sys.path.insert(0, str(code_dir))
    times = []
    try:
        importlib.invalidate_caches()
        mod = importlib.import_module(modname)
        fn = rh.function(mod.value)
        remote = fn.to(cluster, name="redeploy")
        if remote() != 0:
            raise AssertionError("the first deploy did not return 0")
        for i in range(1, repeats + 1):
            mtime += 2_000_000_000
            write(i, mtime)
            t0 = time.perf_counter()
            remote = fn.to(cluster, name="redeploy")
            got = remote()
            dt = time.perf_counter() - t0
            if got != i:
                raise AssertionError(f"redeploy #{i} returned {got!r}, not the new value {i}: "
                                     f"the changed code was not picked up")
            times.append(dt)
        remote.delete()
    finally:
        sys.path.remove(str(code_dir))
        sys.modules.pop(modname, None)
        shutil.rmtree(code_dir, ignore_errors=True)
    return times



def bench_map(ctx: dict, repeats: int) -> list[dict]:
    f = ctx["f"]
    items = list(range(MAP_ITEMS))
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = f.map(items)
        dt = time.perf_counter() - t0
        if out != items:
            raise AssertionError("map returned other results than its inputs")
        if i:
            times.append(dt)
    return [{"key": "map", "figure": FIGURES["map"],
             "ours": MAP_ITEMS / statistics.median(times), "baseline": None, "unit": "items/s",
             "samples": {"ours_seconds": summary(times)}, "details": {"repeats": repeats}}]


