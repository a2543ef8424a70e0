"""Benchmark of an on-demand cluster (rh-skypilot): rh's own part of bring-up on a node that
SkyPilot reports UP, from SkyPilot's status to the first call answered, and a warm ``.to()``.

SkyPilot's SDK functions are the plugin's recording stand-in (plugins/rh-skypilot/tests/
sky_standin.py, named by RH_SKYPILOT_SDK), whose cluster is a private sshd on 127.0.0.1 with
a fresh home (rh-byo's ``start_sshd``): the status record, the SSH details, rh-byo's bring-up
(wheelhouse cached on this machine, shipped and installed on the node), the server and the call
are real. SkyPilot itself is imported before the clock starts (seconds, SkyPilot's own start;
shown as an info line). Needs root, openssh-server, rsync, rh-byo and rh-skypilot."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from common import ARG, FIGURES, summary  # noqa: I001 - bench/ is on sys.path

STANDIN = Path(__file__).resolve().parent.parent / "plugins" / "rh-skypilot" / "tests"


def bench_skypilot(ctx: dict) -> list[dict]:
    try:
        import rh_skypilot  # noqa: F401 - only to say clearly when it is missing
        from rh_byo import testing
        from rh_byo.ssh import free_port
    except ImportError:
        raise RuntimeError("rh-skypilot (and rh-byo) are not installed (pip install -e "
                           "plugins/rh-byo -e plugins/rh-skypilot): no on-demand figures") from None
    lacking = testing.missing()
    if lacking:
        raise RuntimeError(f"no on-demand figures: this needs {lacking}")
    import rh_core as rh
    from rh_core import wheelhouse

    folder = ctx["workdir"] / "skypilot"
    (folder / "home" / ".sky").mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in ("HOME", "RH_SKYPILOT_SDK", "RH_SKY_STANDIN")}
    # SkyPilot keeps its state under ~/.sky: a home of the run's, never the machine's.
    os.environ.update({"HOME": str(folder / "home"), "RH_SKYPILOT_SDK": "sky_standin",
                       "RH_SKY_STANDIN": str(folder), "RH_QUIET": "1"})
    sys.path.insert(0, str(STANDIN))
    sshd = cluster = None
    try:
        t0 = time.perf_counter()
        import sky  # noqa: F401 - SkyPilot's import, outside the figure
        import sky_standin
        sky_import = time.perf_counter() - t0
        wheelhouse.build(log=lambda _: None)  # the target is with the wheelhouse cached
        sshd = testing.start_sshd("rhskybench")
        sky_standin.configure([{"host": sshd.host, "port": sshd.port, "user": sshd.user,
                                "key": sshd.key}])
        port = free_port()  # others' servers on this machine may hold the default one
        cluster = rh.ondemand_cluster(name="bench-sky", instance_type="CPU:2", provider="aws",
                                      autostop_mins=-1, server_port=port)
        from rh_skypilot import autostop, spec

        # SkyPilot launched it (as rh would have): the node is UP, rh is not on it yet.
        sky_standin.get(sky_standin.launch(
            spec.to_task(cluster, run=autostop.watcher_script(
                f"~/.rh/clusters/{cluster.short_name}")), cluster_name="bench-sky"))
        t0 = time.perf_counter()
        f = rh.function(ctx["trivial"]).to(cluster)
        if f(ARG) != ARG:
            raise AssertionError("trivial returned the wrong value on the on-demand cluster")
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(5):
            t0 = time.perf_counter()
            again = rh.ondemand_cluster(name="bench-sky", instance_type="CPU:2",
                                        provider="aws", autostop_mins=-1, server_port=port)
            rh.function(ctx["trivial"]).to(again)
            warm.append(time.perf_counter() - t0)
    finally:
        try:
            if cluster is not None:
                cluster.down()
        finally:
            os.environ.pop("RH_QUIET", None)
            if sshd is not None:
                sshd.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            sys.path.remove(str(STANDIN))
            shutil.rmtree(folder, ignore_errors=True)
    return [
        {"key": "sky_bringup", "figure": FIGURES["sky_bringup"], "ours": cold, "baseline": None,
         "unit": "s", "samples": {"ours": summary([cold]), "sky_import": summary([sky_import])}},
        {"key": "sky_warm", "figure": FIGURES["sky_warm"], "ours": statistics.median(warm),
         "baseline": None, "unit": "s", "samples": {"ours": summary(warm)}},
    ]
