"""Shared pieces of the benchmarks: settings, processes we start and stop, timing."""

from __future__ import annotations

import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
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
    "latency_httpx": ("info", None),
    "latency_std_loop": ("info", None),
    "latency_ray": ("le_ratio", 1.0),
    "latency_json": ("info", None),
    "throughput": ("ge_ratio", 1.00),
    "throughput_http": ("info", None),
    "auth": ("le_ratio", 1.10),
    "tls_caddy": ("le_ratio", 2.0),
    "byo_cold": ("le", 5.0),
    "byo_warm": ("le", 0.5),
    "byo_redeploy": ("le", 0.3),
    "byo_latency": ("le_ratio", 1.5),
    "byo_echo": ("info", None),
    "k8s_latency": ("le_ratio", 1.3),
    "sm_bringup": ("le", 5.0),
    "sm_latency": ("le_ratio", 1.1),
    "sky_bringup": ("le", 5.0),
    "sky_warm": ("info", None),
    "cold_start": ("le", 1.0),
    "redeploy": ("le", 0.100),
    "map": ("ge", 1000.0),
    "map_ray": ("ge_ratio", 1.0),
    "concurrency": ("ge_ratio", 0.8),
    "memory": ("le", 5.0),
    "run_async": ("le_ratio", 1.10),
    "cancel_sleep": ("le", 1.0),
    "object_get": ("ge_ratio", 1.0),
    "den_load": ("le_ratio", 1.0),
    "den_auth": ("le_ratio", 1.05),
    "den_concurrency_p99": ("info", None),
    "den_concurrency_failures": ("le", 0.0),
    "secret_values": ("info", None),
    "secret_to_local": ("info", None),
    "data_small_to_local": ("le_ratio", 1.2),
    "data_small_from_local": ("le_ratio", 1.2),
    "data_big_to_local": ("le_ratio", 1.2),
    "data_big_from_local": ("le_ratio", 1.2),
    "data_small_to_byo": ("le_ratio", 1.2),
    "data_small_from_byo": ("le_ratio", 1.2),
    "data_big_to_byo": ("le_ratio", 1.2),
    "data_big_from_byo": ("le_ratio", 1.2),
    "table_stream": ("ge_ratio", 0.8),
}

FIGURES = {
    "latency": "trivial call latency, pickle (median)",
    "latency_httpx": "trivial call vs the echo called with httpx",
    "latency_std_loop": "trivial call vs the echo on the asyncio loop",
    "latency_ray": "trivial call vs a Ray actor call (median)",
    "latency_json": "trivial call latency, JSON GET (median)",
    "throughput": "64 MiB numpy echo throughput (median)",
    "throughput_http": "64 MiB echo, HTTP only (RH_SHM=off, as remote)",
    "auth": "call with token checks (den_auth, cached) vs none",
    "tls_caddy": "call over TLS through Caddy vs plain HTTP",
    "byo_cold": "byo: cold bring-up over SSH (wheelhouse cached)",
    "byo_warm": "byo: warm .to() on a ready node (median)",
    "byo_redeploy": "byo: redeploy after a one-line change (median)",
    "byo_latency": "byo: trivial call through the SSH tunnel vs local",
    "byo_echo": "byo: 64 MiB echo through the SSH tunnel vs ssh cat",
    "k8s_latency": "kubernetes: trivial call through the port-forward vs local",
    "sm_bringup": "sagemaker: rh's part of bring-up, container start to first call (stand-in)",
    "sm_latency": "sagemaker: trivial call through the aws_ssm stand-in vs an SSH tunnel",
    "sky_bringup": "on-demand: rh's bring-up on a node SkyPilot reports UP, to the first call",
    "sky_warm": "on-demand: .to() on a cluster already up (SkyPilot's status, probe; median)",
    "cold_start": "local cluster cold start, new process (median)",
    "redeploy": "redeploy changed code: .to() + first call (median)",
    "map": f"map of {MAP_ITEMS:,} trivial items (median)",
    "map_ray": f"map of {MAP_ITEMS:,} items vs Ray tasks",
    "concurrency": "16 clients x 500 trivial calls, throughput",
    "memory": "RSS growth (server + worker) over the second 10,000 calls",
    "run_async": "trivial call with run_async=True, awaited, vs plain",
    "cancel_sleep": "cancel: until a time.sleep call no longer runs (median)",
    "object_get": "cluster.get of a 64 MiB array vs echo by call",
    "den_load": "rh.load of an @ name vs a ~ load + one keep-alive trip",
    "den_auth": "call let in by a cached store token vs the owner's",
    "den_concurrency_p99": "store: many clients saving, loading, sharing: request p99",
    "den_concurrency_failures": "store: errors + lost updates in that run",
    "secret_values": "rh.secret(name).values from the keyring (median)",
    "secret_to_local": "provider secret .to(local cluster) (median)",
    "data_small_to_local": "folder of 1,000 small files to the local cluster vs tar|tar",
    "data_small_from_local": "folder of 1,000 small files from the local cluster vs tar|tar",
    "data_big_to_local": "folder of one 512 MiB file to the local cluster vs tar|tar",
    "data_big_from_local": "folder of one 512 MiB file from the local cluster vs tar|tar",
    "data_small_to_byo": "folder of 1,000 small files to a byo node vs rsync",
    "data_small_from_byo": "folder of 1,000 small files from a byo node vs rsync",
    "data_big_to_byo": "folder of one 512 MiB file to a byo node vs rsync",
    "data_big_from_byo": "folder of one 512 MiB file from a byo node vs rsync",
    "table_stream": "t.stream() of a 1 GB Parquet table vs pyarrow directly",
}

UNITS = {"latency": "s", "latency_httpx": "s", "latency_std_loop": "s", "latency_ray": "s",
         "latency_json": "s",
         "throughput": "MiB/s", "throughput_http": "MiB/s",
         "auth": "s", "tls_caddy": "s", "byo_cold": "s", "byo_warm": "s", "byo_redeploy": "s",
         "byo_echo": "MiB/s", "byo_latency": "s", "k8s_latency": "s", "sm_bringup": "s", "sm_latency": "s",
         "sky_bringup": "s", "sky_warm": "s",
         "cold_start": "s",
         "redeploy": "s", "map": "items/s", "map_ray": "items/s", "concurrency": "calls/s", "memory": "MiB",
         "run_async": "s", "cancel_sleep": "s",
         "object_get": "MiB/s", "secret_values": "s", "secret_to_local": "s",
         "den_load": "s", "den_auth": "s", "den_concurrency_p99": "s", "den_concurrency_failures": "",
         "table_stream": "MiB/s",
         **{f"data_{size}_{way}_{where}": "s" for size in ("small", "big")
            for way in ("to", "from") for where in ("local", "byo")}}

SIZES = {
    #            latency calls, echo repeats, cold starts, redeploys, map repeats
    "default": dict(calls=3000, echo=5, cold=5, redeploy=20, map=7, cancel=5, concurrent=500,
                    leak=10_000, den_clients=32, den_ops=100),
    "quick": dict(calls=500, echo=3, cold=2, redeploy=5, map=3, cancel=2, concurrent=100,
                  leak=2_000, den_clients=8, den_ops=25),
}


# ============================================================================= processes


def _alive(pid: int) -> bool:
    from rh_core.builtin.local import process_alive

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


def server_loop(home: Path) -> str:
    """The event loop the local cluster's server recorded (``uvloop`` or ``asyncio``): the
    baseline echo runs on the same one."""
    try:
        record = json.loads((home / "clusters" / "local" / "server.json").read_text())
    except (OSError, ValueError):
        return "asyncio"
    return record.get("loop") or "asyncio"


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

    def __init__(self, kind: str, workdir: Path, loop: str = "asyncio"):
        self.kind, self.workdir, self.loop = kind, workdir, loop
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def __enter__(self) -> Baseline:
        log = open(self.workdir / f"baseline-{self.kind}-{self.loop}.log", "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "baselines.py"), self.kind, "0",
                 "--parent-pid", str(os.getpid()), "--loop", self.loop],
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


