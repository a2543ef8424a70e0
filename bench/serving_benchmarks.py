"""Benchmarks of serving: token checks, TLS through Caddy, bring-your-own clusters."""

from __future__ import annotations

import os
import socket
import statistics
import time

from common import (  # noqa: I001 - bench/ is on sys.path
    ARG,
    ECHO_BYTES,
    FIGURES,
    MIB,
    interleaved,
    summary,
)
from core_benchmarks import redeploy_times

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



def _echo_over_ssh(cluster, f, repeats: int = 3) -> dict[str, float]:
    """MiB/s of 64 MiB of bytes echoed by ``f`` on a byo cluster (through its SSH tunnel; bytes,
    since the node's env has no numpy), and of the same bytes sent up and back by ``ssh node
    cat`` over the cluster's own master connection (the raw SSH baseline), best of ``repeats``,
    alternating."""
    import subprocess

    raw = os.urandom(ECHO_BYTES)
    data = raw
    node = cluster.provider.node
    best = {"rh": 0.0, "ssh": 0.0}
    mib = 2 * ECHO_BYTES / MIB  # up and back
    for _ in range(repeats):
        t0 = time.perf_counter()
        back = f(data)
        best["rh"] = max(best["rh"], mib / (time.perf_counter() - t0))
        if len(back) != ECHO_BYTES:
            raise AssertionError("the echo came back with the wrong size")
        t0 = time.perf_counter()
        out = subprocess.run(["ssh", *node.options(), node.target, "cat"], input=raw,
                             capture_output=True, check=True).stdout
        best["ssh"] = max(best["ssh"], mib / (time.perf_counter() - t0))
        if len(out) != ECHO_BYTES:
            raise AssertionError("ssh cat came back with the wrong size")
    return best


def bench_byo(ctx: dict, calls: int) -> list[dict]:
    """A bring-your-own cluster over real SSH to a private sshd on 127.0.0.1 (needs root,
    openssh-server, rsync and the rh-byo plugin)."""
    try:
        from rh_byo import testing

        from rh_core import wheelhouse
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
        echo = _echo_over_ssh(cluster, f)
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
        {"key": "byo_echo", "figure": FIGURES["byo_echo"], "ours": echo["rh"],
         "baseline": echo["ssh"], "unit": "MiB/s",
         "baseline_name": "the same bytes through `ssh node cat` on the cluster's own SSH "
                          "connection, up and back"},
        {"key": "byo_latency", "figure": FIGURES["byo_latency"],
         "ours": statistics.median(t["byo"]), "baseline": statistics.median(t["local"]),
         "unit": "s", "baseline_name": "the same call on the local cluster",
         "samples": {"byo": summary(t["byo"]), "local": summary(t["local"])}},
    ]


