"""Benchmark of a Kubernetes cluster (rh-kubernetes): a trivial call through the port-forward
to a pod of the Kubernetes stand-in (plugins/rh-kubernetes/tests/standin: the real kubernetes
client, the API server's portforward websocket stood in, a real rh server in the pod's network
namespace) beside the same call to the local cluster over plain loopback HTTP, interleaved.
Needs root, iproute2 and the rh-kubernetes plugin installed."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (  # noqa: I001 - bench/ is on sys.path
    ARG,
    FIGURES,
    interleaved,
    stop_proc,
    summary,
)

STANDIN = Path(__file__).resolve().parent.parent / "plugins" / "rh-kubernetes" / "tests"


def start_standin(workdir: Path) -> subprocess.Popen:
    """The stand-in API server in a subprocess; its kubeconfig is ``workdir/standin/kubeconfig``."""
    folder = workdir / "standin"
    folder.mkdir()
    log = open(folder / "standin.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "standin.main", "--dir", str(folder)],
                            cwd=STANDIN, env={**os.environ, "PYTHONPATH": str(STANDIN)},
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 30
    while not (folder / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_proc(proc)
            raise RuntimeError(f"the Kubernetes stand-in did not start:\n"
                               f"{(folder / 'standin.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def bench_kubernetes(ctx: dict, calls: int) -> list[dict]:
    try:
        import rh_kubernetes  # noqa: F401 - only to say clearly when it is missing
    except ImportError:
        raise RuntimeError("the rh-kubernetes plugin is not installed (pip install -e "
                           "plugins/rh-kubernetes): no Kubernetes figure") from None
    if os.geteuid() != 0:
        raise RuntimeError("no Kubernetes figure: the stand-in's pods need root")
    import rh_core as rh

    os.environ["RH_QUIET"] = "1"
    saved = os.environ.get("KUBECONFIG")
    proc = start_standin(ctx["workdir"])
    cluster = None
    try:
        os.environ["KUBECONFIG"] = str(ctx["workdir"] / "standin" / "kubeconfig")
        cluster = rh.kubernetes_cluster(name="bench-k8s", cpus="1", memory="2Gi")
        f = rh.function(ctx["trivial"]).to(cluster)
        local_f = ctx["f"]

        def forwarded():
            if f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value through the port-forward")

        def local():
            if local_f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value")

        t = interleaved({"k8s": forwarded, "local": local}, calls)
    finally:
        os.environ.pop("RH_QUIET", None)
        try:
            if cluster is not None:
                cluster.down()
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved
            proc.terminate()  # the stand-in stops its pods before it exits
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                stop_proc(proc)
    return [{"key": "k8s_latency", "figure": FIGURES["k8s_latency"],
             "ours": statistics.median(t["k8s"]), "baseline": statistics.median(t["local"]),
             "unit": "s", "baseline_name": "the same call on the local cluster (loopback HTTP)",
             "samples": {"k8s": summary(t["k8s"]), "local": summary(t["local"])}}]
