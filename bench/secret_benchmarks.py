"""Benchmarks of secrets: ``rh.secret(name).values`` from the keyring (keyrings.alt's file, in
the run's temporary folder) against the bare keyring read it wraps, and ``secret.to(cluster)``
to a local cluster against a trivial call's round trip."""

from __future__ import annotations

import os
import statistics

from common import FIGURES, interleaved, summary  # noqa: I001 - bench/ is on sys.path


def bench_secrets(ctx: dict, calls: int) -> list[dict]:
    import keyring

    import rh_core as rh

    workdir = ctx["workdir"]
    saved_env = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "PYTHON_KEYRING_BACKEND", "HOME")}
    os.environ["XDG_DATA_HOME"] = str(workdir / "xdg-data")  # never the user's own keyring
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    keyring.core.init_backend()
    node = None
    try:
        rh.secret(name="bench-openai", values={"api_key": "sk-bench-0000"}).save(overwrite=True)
        reads = interleaved({
            "rh.secret(name).values": lambda: rh.secret("bench-openai").values,
            "keyring.get_password": lambda: keyring.get_password("rh", "secrets/bench-openai"),
        }, max(calls // 5, 50), block=20, warmup=10)

        # A cluster of its own whose server's home is in the run's folder: the files a provider
        # secret writes land there, never in the home of whoever runs the bench.
        os.environ["HOME"] = str(workdir / "node-home")
        (workdir / "node-home").mkdir(exist_ok=True)
        node = rh.cluster(name="bench-secrets", provider="local").up_if_not()
        f = rh.function(ctx["trivial"]).to(node)
        aws = rh.provider_secret("aws", values={"access_key": "AKIABENCH", "secret_key": "x"})
        own = rh.secret("bench-openai")
        sends = interleaved({
            "aws.to(local): a file": lambda: aws.to(node),
            "secret.to(local, env): variables, no worker running": lambda: own.to(
                node, env=rh.env(name="bench-idle-env")),
            "trivial call f(1)": lambda: f(1),
        }, max(calls // 10, 30), block=10, warmup=5)
    finally:
        if node is not None:
            node.down()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    base_read = summary(reads["keyring.get_password"])
    base_call = summary(sends["trivial call f(1)"])
    return [
        {"key": "secret_values", "figure": FIGURES["secret_values"],
         "ours": statistics.median(reads["rh.secret(name).values"]),
         "baseline": base_read["median"], "unit": "s",
         "baseline_name": "keyring.get_password of the same entry (the backend's own read)",
         "samples": {k: summary(v) for k, v in reads.items()}},
        {"key": "secret_to_local", "figure": FIGURES["secret_to_local"],
         "ours": statistics.median(sends["aws.to(local): a file"]),
         "baseline": base_call["median"], "unit": "s",
         "baseline_name": "a trivial call's round trip to the same cluster",
         "samples": {k: summary(v) for k, v in sends.items()}},
    ]
