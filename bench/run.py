"""rh benchmark suite: our figures beside baselines measured in the same run, against targets.

    python bench/run.py            # default run (about a minute)
    python bench/run.py --quick    # short run (under ~40 s)
    python bench/run.py --json out.json

Everything runs against a local cluster under a temporary RH_HOME (never ~/.rh); every server and
subprocess started here is stopped by its PID before the run ends. The exit code is 0 even when a
target is missed (benchmarks inform, they do not gate CI) and 1 when a benchmark crashed.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

MIB = 1 << 20
ECHO_BYTES = 64 * MIB
MAP_ITEMS = 10_000
ARG = 1  # the small payload of a trivial call (and of its baseline request)

# name -> (comparison, target). "le_ratio": ours/baseline <= target; "ge_ratio": ours/baseline >=
# target; "le"/"ge": ours against an absolute target.
TARGETS = {
    "latency": ("le_ratio", 1.25),
    "latency_json": ("info", None),
    "throughput": ("ge_ratio", 0.50),
    "throughput_http": ("info", None),
    "auth": ("le_ratio", 1.10),
    "tls_caddy": ("le_ratio", 2.0),
    "byo_cold": ("le", 20.0),
    "byo_warm": ("le", 0.5),
    "byo_redeploy": ("le", 0.3),
    "byo_latency": ("le_ratio", 1.5),
    "cold_start": ("le", 2.0),
    "redeploy": ("le", 0.100),
    "map": ("ge", 1000.0),
}

FIGURES = {
    "latency": "trivial call latency, pickle (median)",
    "latency_json": "trivial call latency, JSON GET (median)",
    "throughput": "64 MiB numpy echo throughput (median)",
    "throughput_http": "64 MiB echo, HTTP only (RH_SHM=off, as remote)",
    "auth": "call with token checks (den_auth, cached) vs none",
    "tls_caddy": "call over TLS through Caddy vs plain HTTP",
    "byo_cold": "byo: cold bring-up over SSH (wheelhouse cached)",
    "byo_warm": "byo: warm .to() on a ready node (median)",
    "byo_redeploy": "byo: redeploy after a one-line change (median)",
    "byo_latency": "byo: trivial call through the SSH tunnel vs local",
    "cold_start": "local cluster cold start, new process (median)",
    "redeploy": "redeploy changed code: .to() + first call (median)",
    "map": f"map of {MAP_ITEMS:,} trivial items (median)",
}

UNITS = {"latency": "s", "latency_json": "s", "throughput": "MiB/s", "throughput_http": "MiB/s",
         "auth": "s", "tls_caddy": "s", "byo_cold": "s", "byo_warm": "s", "byo_redeploy": "s",
         "byo_latency": "s",
         "cold_start": "s",
         "redeploy": "s", "map": "items/s"}

SIZES = {
    #            latency calls, echo repeats, cold starts, redeploys, map repeats
    "default": dict(calls=3000, echo=5, cold=5, redeploy=20, map=7),
    "quick": dict(calls=500, echo=3, cold=2, redeploy=5, map=3),
}


# ============================================================================= processes


def _alive(pid: int) -> bool:
    from rh_core.local import process_alive

    return process_alive(pid)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid``, wait for it to go, SIGKILL it if it does not."""
    if not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_proc(proc: subprocess.Popen | None) -> None:
    """Stop a subprocess we started (by its PID) and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def stop_recorded_server(home: Path) -> int | None:
    """Stop the local cluster server recorded under ``home`` (by its recorded PID)."""
    record = home / "clusters" / "local" / "server.json"
    try:
        pid = int(json.loads(record.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None
    stop_pid(pid)
    return pid


def read_line(proc: subprocess.Popen, timeout: float, what: str) -> str:
    """The next stdout line of ``proc`` (raises if none comes in ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: no output within {timeout:.0f} s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"{what}: exited (code {proc.wait()}) before answering")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()


class Baseline:
    """A baseline server (bench/baselines.py) in a subprocess; a context manager."""

    def __init__(self, kind: str, workdir: Path):
        self.kind, self.workdir = kind, workdir
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def __enter__(self) -> Baseline:
        log = open(self.workdir / f"baseline-{self.kind}.log", "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "baselines.py"), self.kind, "0",
                 "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            )
        finally:
            log.close()
        try:
            self.port = int(read_line(self.proc, 30, f"baseline {self.kind} server"))
        except BaseException:
            stop_proc(self.proc)
            raise
        return self

    def __exit__(self, *exc) -> None:
        stop_proc(self.proc)


# ============================================================================= measuring


def summary(samples: list[float]) -> dict:
    s = sorted(samples)
    q = lambda p: s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]  # noqa: E731
    return {"n": len(s), "median": statistics.median(s), "min": s[0], "p10": q(0.10),
            "p90": q(0.90), "max": s[-1]}


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(paths: dict[str, Callable[[], None]], calls: int, block: int = 100,
                warmup: int = 50) -> dict[str, list[float]]:
    """Per-call times of each path, ``calls`` each, run in alternating blocks (so drift and noise
    from the rest of the machine hit every path alike)."""
    perf = time.perf_counter
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in paths}
    done = 0
    while done < calls:
        n = min(block, calls - done)
        for key, fn in paths.items():
            times = out[key]
            for _ in range(n):
                t0 = perf()
                fn()
                times.append(perf() - t0)
        done += n
    return out


# ============================================================================= benchmarks


def _json_call(http, path: str):
    def call():
        r = http.get(path)
        if r.status_code != 200 or r.json() != ARG:
            raise AssertionError(f"GET {path} answered {r.status_code}: {r.text[:200]}")
    return call


def bench_auth(ctx: dict, calls: int) -> list[dict]:
    """The same JSON call, anonymous on the main cluster (no token checks) and with a granted
    read token on a den_auth cluster (the auth hook's verdict cached)."""
    import httpx

    import rh_core as rh

    secured = rh.cluster(name="bench-den-auth", provider="local", den_auth=True)
    try:
        rh.function(ctx["trivial"]).to(secured)
        token = secured.grant("bench", "read", ["trivial"])
        path = f"/trivial/call?x={ARG}"
        with httpx.Client(base_url=ctx["cluster"].client().info.base_url) as plain, \
                httpx.Client(base_url=secured.client().info.base_url,
                             headers={"Authorization": f"Bearer {token}"}) as authed:
            t = interleaved({"auth": _json_call(authed, path), "none": _json_call(plain, path)},
                            calls)
    finally:
        secured.down()
    return [{"key": "auth", "figure": FIGURES["auth"], "ours": statistics.median(t["auth"]),
             "baseline": statistics.median(t["none"]), "unit": "s",
             "baseline_name": "same JSON call, anonymous, den_auth off",
             "samples": {"auth": summary(t["auth"]), "none": summary(t["none"])}}]


def bench_tls_caddy(ctx: dict, calls: int) -> list[dict]:
    """The same JSON call through Caddy with TLS (internal CA) and over plain HTTP to the
    server. Needs Caddy and the rh-caddy plugin installed."""
    import shutil as sh
    import ssl

    import httpx

    import rh_core as rh

    if sh.which("caddy") is None:
        raise RuntimeError("Caddy is not installed (apt-get install caddy): no TLS figure")
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("rh-caddy")
    except PackageNotFoundError:
        raise RuntimeError("the rh-caddy plugin is not installed (pip install -e "
                           "plugins/rh-caddy): no TLS figure") from None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fronted = rh.cluster(name="bench-caddy", provider="local", use_caddy=True, server_port=port,
                         server_connection_type="tls", den_auth=True)
    try:
        rh.function(ctx["trivial"]).to(fronted)
        info = fronted.client().info
        token = fronted.grant("bench", "read", ["trivial"])
        path = f"/trivial/call?x={ARG}"
        with httpx.Client(base_url=info.base_url, headers={"Authorization": f"Bearer {token}"},
                          verify=ssl.create_default_context(cafile=info.verify)) as tls, \
                httpx.Client(base_url=ctx["cluster"].client().info.base_url) as plain:
            t = interleaved({"tls": _json_call(tls, path), "plain": _json_call(plain, path)},
                            calls)
    finally:
        fronted.down()
    return [{"key": "tls_caddy", "figure": FIGURES["tls_caddy"],
             "ours": statistics.median(t["tls"]), "baseline": statistics.median(t["plain"]),
             "unit": "s", "baseline_name": "same JSON call, plain HTTP to the server",
             "samples": {"tls": summary(t["tls"]), "plain": summary(t["plain"])}}]


def bench_latency(ctx: dict, calls: int) -> list[dict]:
    import httpx

    from rh_core import wire

    f, client = ctx["f"], ctx["cluster"].client()
    body = wire.joined(wire.dumps_pickle(((ARG,), {})))  # the exact body f(ARG) sends
    with Baseline("http", ctx["workdir"]) as srv, \
            httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as hc:
        headers = {"Content-Type": wire.PICKLE_CT}

        def ours():
            if f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value")

        def ours_json():
            r = client.http.get(f"/trivial/call?x={ARG}")
            if r.status_code != 200 or r.json() != ARG:
                raise AssertionError(f"GET /trivial/call answered {r.status_code}: {r.text[:200]}")

        def baseline():
            r = hc.post("/echo", content=body, headers=headers)
            if r.status_code != 200 or r.content != body:
                raise AssertionError(f"baseline echo answered {r.status_code}")

        t = interleaved({"ours": ours, "json": ours_json, "baseline": baseline}, calls)
    base = summary(t["baseline"])
    return [
        {"key": "latency", "figure": FIGURES["latency"],
         "ours": statistics.median(t["ours"]), "baseline": base["median"], "unit": "s",
         "baseline_name": "Starlette+Hypercorn echo, httpx keep-alive",
         "samples": {"ours": summary(t["ours"]), "baseline": base},
         "details": {"calls": calls, "body_bytes": len(body)}},
        {"key": "latency_json", "figure": FIGURES["latency_json"],
         "ours": statistics.median(t["json"]), "baseline": base["median"], "unit": "s",
         "baseline_name": "Starlette+Hypercorn echo, httpx keep-alive",
         "samples": {"ours": summary(t["json"]), "baseline": base},
         "details": {"calls": calls, "request": f"GET /trivial/call?x={ARG}"}},
    ]


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


def bench_byo(ctx: dict, calls: int) -> list[dict]:
    """A bring-your-own cluster over real SSH to a private sshd on 127.0.0.1 (needs root,
    openssh-server, rsync and the rh-byo plugin)."""
    try:
        from rh_byo import testing, wheelhouse
    except ImportError:
        raise RuntimeError("the rh-byo plugin is not installed (pip install -e plugins/rh-byo): "
                           "no bring-your-own figures") from None
    lacking = testing.missing()
    if lacking:
        raise RuntimeError(f"no bring-your-own figures: this needs {lacking}")
    import rh_core as rh

    os.environ["RH_QUIET"] = "1"
    wheelhouse.build(log=lambda _: None)  # the target is with the wheelhouse cached
    sshd = testing.start_sshd("rhbench")
    cluster = None
    try:
        t0 = time.perf_counter()
        cluster = rh.cluster(name="bench-byo", ips=["127.0.0.1"], ssh_creds=sshd.creds)
        f = rh.function(ctx["trivial"]).to(cluster)
        if f(ARG) != ARG:
            raise AssertionError("trivial returned the wrong value on the byo cluster")
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(5):
            t0 = time.perf_counter()
            again = rh.cluster(name="bench-byo", ips=["127.0.0.1"], ssh_creds=sshd.creds)
            rh.function(ctx["trivial"]).to(again)
            warm.append(time.perf_counter() - t0)
        redeploy = redeploy_times(cluster, 5)
        local_f = ctx["f"]

        def via_tunnel():
            if f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value")

        def local():
            if local_f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value")

        t = interleaved({"byo": via_tunnel, "local": local}, calls)
    finally:
        os.environ.pop("RH_QUIET", None)
        if cluster is not None:
            cluster.down()
        sshd.stop()
    return [
        {"key": "byo_cold", "figure": FIGURES["byo_cold"], "ours": cold, "baseline": None,
         "unit": "s", "samples": {"ours": summary([cold])}},
        {"key": "byo_warm", "figure": FIGURES["byo_warm"], "ours": statistics.median(warm),
         "baseline": None, "unit": "s", "samples": {"ours": summary(warm)}},
        {"key": "byo_redeploy", "figure": FIGURES["byo_redeploy"],
         "ours": statistics.median(redeploy), "baseline": None, "unit": "s",
         "samples": {"ours": summary(redeploy)}},
        {"key": "byo_latency", "figure": FIGURES["byo_latency"],
         "ours": statistics.median(t["byo"]), "baseline": statistics.median(t["local"]),
         "unit": "s", "baseline_name": "the same call on the local cluster",
         "samples": {"byo": summary(t["byo"]), "local": summary(t["local"])}},
    ]


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


# ============================================================================= report


def verdict(row: dict) -> dict:
    how, target = TARGETS[row["key"]]
    ours, base = row.get("ours"), row.get("baseline")
    row["target"] = {"comparison": how, "value": target}
    if row.get("error"):
        row["ratio"], row["meets"] = None, None
    elif how == "le_ratio":
        row["ratio"] = ours / base
        row["meets"] = row["ratio"] <= target
    elif how == "ge_ratio":
        row["ratio"] = ours / base
        row["meets"] = row["ratio"] >= target
    elif how == "le":
        row["ratio"], row["meets"] = None, ours <= target
    elif how == "ge":
        row["ratio"], row["meets"] = None, ours >= target
    else:
        row["ratio"] = ours / base if base else None
        row["meets"] = None
    return row


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1e3:.3f} ms" if v < 0.1 else (f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s")
    if unit == "MiB/s":
        return f"{v:,.0f} MiB/s"
    if unit == "items/s":
        return f"{v:,.0f} items/s"
    return f"{v:.4g} {unit}"


def fmt_target(row: dict) -> str:
    how, target = TARGETS[row["key"]]
    r = row.get("ratio")
    if how == "le_ratio":
        return f"{r:.2f}× / ≤ {target:.2f}×" if r is not None else f"— / ≤ {target:.2f}×"
    if how == "ge_ratio":
        return f"{r:.0%} / ≥ {target:.0%}" if r is not None else f"— / ≥ {target:.0%}"
    if how == "le":
        return f"— / ≤ {fmt_value(target, row['unit'])}"
    if how == "ge":
        return f"— / ≥ {fmt_value(target, row['unit'])}"
    return f"{r:.2f}× / (info)" if r is not None else "(info)"


def print_report(rows: list[dict], meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    width = shutil.get_terminal_size((120, 40)).columns
    console = Console(width=max(width, 120))
    table = Table(title=f"rh benchmarks ({meta['mode']} run, {meta['python']}, "
                        f"{meta['cpus']} CPUs)")
    table.add_column("figure")
    table.add_column("ours", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio / target", justify="right")
    table.add_column("verdict")
    for row in rows:
        if row.get("error"):
            table.add_row(row["figure"], "[red]ERROR[/red]", "—", fmt_target(row),
                          "[red]crashed[/red]")
            continue
        v = {True: "[green]meets[/green]", False: "[red]misses[/red]", None: "info"}[row["meets"]]
        table.add_row(row["figure"], fmt_value(row["ours"], row["unit"]),
                      fmt_value(row["baseline"], row["unit"]), fmt_target(row), v)
    console.print(table)
    notes = []
    for row in rows:
        if row.get("error"):
            notes.append(f"{row['figure']}: CRASHED: {row['error']}")
            continue
        if row.get("baseline_name"):
            notes.append(f"{row['key']}: baseline = {row['baseline_name']}")
        bd = row.get("details", {}).get("breakdown_median_s")
        if bd:
            notes.append(f"{row['key']}: breakdown (median) " + ", ".join(
                f"{k} {v * 1e3:.0f} ms" for k, v in bd.items()))
        s = row.get("samples", {})
        for k, sm in s.items():
            unit = "s"
            notes.append(f"{row['key']}: {k}: n={sm['n']} min {fmt_value(sm['min'], unit)} "
                         f"p10 {fmt_value(sm['p10'], unit)} median {fmt_value(sm['median'], unit)} "
                         f"p90 {fmt_value(sm['p90'], unit)} max {fmt_value(sm['max'], unit)}")
    la0, la1 = meta["loadavg_start"], meta["loadavg_end"]
    notes.append(f"load average (1/5/15 min) at start {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f}, at end "
                 f"{la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f}: other work on the machine skews the "
                 f"figures; the latency baseline runs interleaved with ours so both share it")
    for n in notes:
        console.print(n, highlight=False, soft_wrap=True)


# ============================================================================= main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run (fewer calls and repeats)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = p.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "default"]

    # Let SIGTERM unwind through the finally blocks, so every server started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="rh-bench-"))
    home = workdir / "rh_home"
    home.mkdir(mode=0o700)
    os.environ["RH_HOME"] = str(home)  # before rh_core is imported: never touch ~/.rh
    meta = {"mode": "quick" if args.quick else "default", "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "sizes": sizes,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": os.getloadavg()}
    rows: list[dict] = []
    t_start = time.perf_counter()

    def run(label: str, fn, *a, keys: list[str]) -> None:
        print(f"… {label}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rows.extend(verdict(r) for r in fn(*a))
        except Exception as e:  # noqa: BLE001 - reported, then the other benchmarks run
            traceback.print_exc()
            for k in keys:
                rows.append(verdict({"key": k, "figure": FIGURES[k], "ours": None,
                                     "baseline": None, "unit": UNITS[k],
                                     "error": f"{type(e).__name__}: {e}"}))
        print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    ctx: dict = {"workdir": workdir}
    cluster = None
    try:
        # Cold start first, while nothing else of ours is running.
        run("cold start (new process, fresh RH_HOME)", bench_cold_start, ctx, sizes["cold"],
            keys=["cold_start"])

        from workloads import trivial  # noqa: I001 - bench/ is on sys.path

        import rh_core as rh

        cluster = rh.cluster("local")
        ctx["cluster"], ctx["trivial"] = cluster, trivial
        try:
            ctx["f"] = rh.function(trivial).to(cluster)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            ctx["setup_error"] = e

        def needs_cluster(fn):
            def wrapped(*a):
                if "setup_error" in ctx:
                    raise RuntimeError(f"the local cluster did not come up: {ctx['setup_error']}")
                return fn(*a)
            return wrapped

        run("trivial call latency (pickle, JSON GET, baseline)", needs_cluster(bench_latency),
            ctx, sizes["calls"], keys=["latency", "latency_json"])
        run("map of 10,000 items", needs_cluster(bench_map), ctx, sizes["map"], keys=["map"])
        run("redeploy of changed code", needs_cluster(bench_redeploy), ctx, sizes["redeploy"],
            keys=["redeploy"])
        run("64 MiB echo throughput (ours, raw TCP)", needs_cluster(bench_throughput), ctx,
            sizes["echo"], keys=["throughput", "throughput_http"])
        run("token checks", needs_cluster(bench_auth), ctx, sizes["calls"], keys=["auth"])
        run("TLS through Caddy", needs_cluster(bench_tls_caddy), ctx, sizes["calls"],
            keys=["tls_caddy"])
        run("bring-your-own cluster over SSH", needs_cluster(bench_byo), ctx, sizes["calls"],
            keys=["byo_cold", "byo_warm", "byo_redeploy", "byo_latency"])
    finally:
        if cluster is not None:
            try:
                cluster.down()  # stops the server recorded under our RH_HOME, by its PID
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        stop_recorded_server(home)  # in case the cluster object never got to it
        shutil.rmtree(workdir, ignore_errors=True)

    order = list(TARGETS)
    rows.sort(key=lambda r: order.index(r["key"]))
    meta["seconds"] = time.perf_counter() - t_start
    meta["loadavg_end"] = os.getloadavg()
    print_report(rows, meta)
    print(f"total benchmark time: {meta['seconds']:.1f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2,
                                              default=str))
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
