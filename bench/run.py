"""rh benchmark suite: our figures beside baselines measured in the same run, against targets.

    python bench/run.py            # default run (about three minutes)
    python bench/run.py --quick    # short run (about a minute)
    python bench/run.py --json out.json

Everything runs against a local cluster under a temporary RH_HOME (never ~/.rh); every server and
subprocess started here is stopped by its PID before the run ends. The exit code is 0 even when a
target is missed (benchmarks inform, they do not gate CI) and 1 when a benchmark crashed.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from call_surface_benchmarks import (
    bench_cancel,
    bench_concurrency,
    bench_memory,
    bench_object_get,
    bench_ray,
    bench_run_async,
)
from common import (  # noqa: I001 - bench/ is on sys.path
    FIGURES,
    MAP_ITEMS,
    SIZES,
    TARGETS,
    UNITS,
    stop_recorded_server,
)
from core_benchmarks import bench_cold_start, bench_latency, bench_map, bench_redeploy, bench_throughput
from data_benchmarks import bench_data_byo, bench_data_local, bench_table_stream
from den_benchmarks import bench_den
from kubernetes_benchmarks import bench_kubernetes
from sagemaker_benchmarks import bench_sagemaker
from secret_benchmarks import bench_secrets
from serving_benchmarks import bench_auth, bench_byo, bench_tls_caddy
from skypilot_benchmarks import bench_skypilot

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
    if unit in ("items/s", "calls/s"):
        return f"{v:,.0f} {unit}"
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
    p.add_argument("--only", metavar="KEYS", default=None,
                   help="run only the benchmarks giving these figures (comma-separated keys of "
                        "bench/common.py's TARGETS, e.g. latency,run_async,concurrency)")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(TARGETS):
        p.error(f"unknown figure keys {sorted(only - set(TARGETS))}; known: {', '.join(TARGETS)}")
    sizes = SIZES["quick" if args.quick else "default"]

    # Let SIGTERM unwind through the finally blocks, so every server started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="rh-bench-"))
    home = workdir / "rh_home"
    home.mkdir(mode=0o700)
    os.environ["RH_HOME"] = str(home)  # before rh_core is imported: never touch ~/.rh
    os.environ["RH_SSH_CONFIG"] = "none"  # nor ~/.ssh/config (byo adds an Include line there)
    meta = {"mode": "quick" if args.quick else "default", "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "sizes": sizes,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": os.getloadavg()}
    rows: list[dict] = []
    t_start = time.perf_counter()

    def run(label: str, fn, *a, keys: list[str]) -> None:
        if only is not None and not only & set(keys):
            return
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
            ctx, sizes["calls"], keys=["latency", "latency_httpx", "latency_std_loop", "latency_json"])
        run("Ray actor calls and tasks", needs_cluster(bench_ray), ctx, sizes["calls"],
            MAP_ITEMS, keys=["latency_ray", "map_ray"])
        run("map of 10,000 items", needs_cluster(bench_map), ctx, sizes["map"], keys=["map"])
        run("redeploy of changed code", needs_cluster(bench_redeploy), ctx, sizes["redeploy"],
            keys=["redeploy"])
        run("64 MiB echo throughput (ours, raw TCP)", needs_cluster(bench_throughput), ctx,
            sizes["echo"], keys=["throughput", "throughput_http"])
        run("token checks", needs_cluster(bench_auth), ctx, sizes["calls"], keys=["auth"])
        run("16 concurrent clients", needs_cluster(bench_concurrency), ctx, 16,
            sizes["concurrent"], keys=["concurrency"])
        run("memory over many calls", needs_cluster(bench_memory), ctx, sizes["leak"],
            keys=["memory"])
        run("run_async against a plain call", needs_cluster(bench_run_async), ctx,
            sizes["calls"], keys=["run_async"])
        run("cancel of sleeping calls", needs_cluster(bench_cancel), ctx, sizes["cancel"],
            keys=["cancel_sleep"])
        run("cluster.get of a 64 MiB array", needs_cluster(bench_object_get), ctx,
            sizes["echo"], keys=["object_get"])
        run("secrets: values from the keyring, .to(local)", needs_cluster(bench_secrets), ctx,
            sizes["calls"], keys=["secret_values", "secret_to_local"])
        run("TLS through Caddy", needs_cluster(bench_tls_caddy), ctx, sizes["calls"],
            keys=["tls_caddy"])
        run("bring-your-own cluster over SSH", needs_cluster(bench_byo), ctx, sizes["calls"],
            keys=["byo_cold", "byo_warm", "byo_redeploy", "byo_echo", "byo_latency"])
        mode = meta["mode"]
        run("folders to and from the local cluster", needs_cluster(bench_data_local), ctx, mode,
            keys=[f"data_{s}_{w}_local" for s in ("small", "big") for w in ("to", "from")])
        run("folders to and from a byo node", bench_data_byo, ctx, mode,
            keys=[f"data_{s}_{w}_byo" for s in ("small", "big") for w in ("to", "from")])
        run("a Parquet table streamed", bench_table_stream, ctx, mode, keys=["table_stream"])
        run("the shared store (rh-den)", needs_cluster(bench_den), ctx, sizes["calls"],
            sizes["den_clients"], sizes["den_ops"],
            keys=["den_load", "den_auth", "den_concurrency_p99", "den_concurrency_failures"])
        run("Kubernetes cluster through the port-forward", needs_cluster(bench_kubernetes), ctx,
            sizes["calls"], keys=["k8s_latency"])
        run("SageMaker cluster through the aws_ssm stand-in", needs_cluster(bench_sagemaker),
            ctx, sizes["calls"], keys=["sm_bringup", "sm_latency"])
        run("on-demand cluster on a node SkyPilot reports UP", needs_cluster(bench_skypilot),
            ctx, keys=["sky_bringup", "sky_warm"])
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
