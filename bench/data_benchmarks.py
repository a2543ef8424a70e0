"""Data figures: folders to and from the local cluster and a bring-your-own node against
``tar | tar`` and ``rsync`` of the same tree in the same run, and a Parquet table streamed with
``t.stream()`` against pyarrow reading the same files. The trees and the table are generated in
the run's temporary folder; every copy goes to a fresh destination, removed afterwards."""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

from common import FIGURES, MIB, summary

#: name -> (files, bytes of each), per mode.
TREES = {
    "default": {"small": (1000, 4096), "big": (1, 512 * MIB)},
    "quick": {"small": (1000, 4096), "big": (1, 128 * MIB)},
}
TABLE_BYTES = {"default": 1024 * MIB, "quick": 256 * MIB}
REPEATS = {"default": 3, "quick": 1}


def make_tree(root: Path, files: int, size: int) -> Path:
    """``files`` files of ``size`` random bytes (in 10 subfolders when there are many)."""
    for i in range(files):
        folder = root / f"d{i % 10}" if files > 10 else root
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"f{i:05d}.bin", "wb") as f:
            left = size
            while left:
                n = min(left, 64 * MIB)
                f.write(os.urandom(n))
                left -= n
    return root


def _run(cmd: str) -> None:
    subprocess.run(["sh", "-c", cmd], check=True, capture_output=True)


def _pairs(ours: Callable[[int], None], base: Callable[[int], None], repeats: int,
           cleanup: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Times of ``ours`` and ``base`` (each given a fresh index), alternating which goes first,
    after a warm-up round; ``cleanup`` runs after every copy (outside the timing)."""
    t_ours, t_base, n = [], [], 0
    for i in range(repeats + 1):
        pair = [(ours, t_ours), (base, t_base)]
        for fn, out in pair if i % 2 else pair[::-1]:  # each goes first every other round
            n += 1
            t0 = time.perf_counter()
            fn(n)
            took = time.perf_counter() - t0
            cleanup()
            if i:  # the first round warms the page cache and the connections
                out.append(took)
    return t_ours, t_base


def _row(key: str, ours: list[float], base: list[float], baseline_name: str) -> dict:
    return {"key": key, "figure": FIGURES[key], "ours": statistics.median(ours),
            "baseline": statistics.median(base), "unit": "s", "baseline_name": baseline_name,
            "samples": {"ours": summary(ours), "baseline": summary(base)}}


def _trees(ctx: dict, mode: str) -> dict[str, Path]:
    if "data_trees" not in ctx:
        root = ctx["workdir"] / "data-src"
        ctx["data_trees"] = {name: make_tree(root / name, files, size)
                             for name, (files, size) in TREES[mode].items()}
    return ctx["data_trees"]


def bench_data_local(ctx: dict, mode: str) -> list[dict]:
    """Folders to and from the local cluster (a filesystem copy on the same machine) against
    ``tar -cf - | tar -xf -`` of the same tree."""
    import rh_core as rh

    cluster, repeats = ctx["cluster"], REPEATS[mode]
    out_root = ctx["workdir"] / "data-out"
    rows = []
    for name, src in _trees(ctx, mode).items():
        on_cluster = rh.folder(path=str(src)).to(cluster, path=str(ctx["workdir"] / f"cl-{name}"))

        def clean():
            shutil.rmtree(out_root, ignore_errors=True)
            out_root.mkdir()

        def tar(frm: str):
            def copy(i: int):
                (out_root / f"t{i}").mkdir()
                _run(f"tar -cf - -C {shlex.quote(frm)} . | tar -xf - -C {out_root}/t{i}")
            return copy

        clean()
        to_o, to_b = _pairs(lambda i, s=src: rh.folder(path=str(s)).to(
            cluster, path=str(out_root / f"o{i}")), tar(str(src)), repeats, clean)
        from_o, from_b = _pairs(lambda i, f=on_cluster: f.to(
            "here", path=str(out_root / f"o{i}")), tar(on_cluster.path), repeats, clean)
        rows += [_row(f"data_{name}_to_local", to_o, to_b, "tar -cf - | tar -xf - of the same tree"),
                 _row(f"data_{name}_from_local", from_o, from_b,
                      "tar -cf - | tar -xf - of the copy on the cluster")]
        shutil.rmtree(on_cluster.path, ignore_errors=True)
    shutil.rmtree(out_root, ignore_errors=True)
    return rows


def bench_data_byo(ctx: dict, mode: str) -> list[dict]:
    """Folders to and from a bring-your-own node over a private sshd on 127.0.0.1 (rsync through
    the master connection) against ``rsync -a`` of the same tree over the same connection."""
    try:
        from rh_byo import testing
        from rh_byo.ssh import free_port

        from rh_core import wheelhouse
    except ImportError:
        raise RuntimeError("the rh-byo plugin is not installed (pip install -e plugins/rh-byo): "
                           "no bring-your-own figures") from None
    lacking = testing.missing()
    if lacking:
        raise RuntimeError(f"no bring-your-own figures: this needs {lacking}")
    import rh_core as rh

    os.environ["RH_QUIET"] = "1"
    wheelhouse.build(log=lambda _: None)
    sshd = testing.start_sshd("rhbenchdata")
    cluster = None
    repeats = REPEATS[mode]
    out_root = ctx["workdir"] / "data-back"
    rows = []
    try:
        cluster = rh.cluster(name="bench-data", ips=["127.0.0.1"], ssh_creds=sshd.creds,
                             server_port=free_port(), sync_limit_mb=4096)
        cluster.up_if_not()
        node = cluster.provider.node
        ssh = "ssh " + " ".join(shlex.quote(o) for o in node.options())
        home = sshd.user_home
        remote_root = f"{home}/bench-in"

        def clean():
            shutil.rmtree(out_root, ignore_errors=True)
            out_root.mkdir()
            node.run(f"rm -rf {remote_root} && mkdir -p {remote_root}")

        def rsync_to(src: Path):
            return lambda i: _run(f"rsync -a -e {shlex.quote(ssh)} {shlex.quote(str(src))}/ "
                                  f"{node.target}:{remote_root}/b{i}/")

        def rsync_from(path: str):
            return lambda i: _run(f"rsync -a -e {shlex.quote(ssh)} {node.target}:{path}/ "
                                  f"{out_root}/b{i}/")

        for name, src in _trees(ctx, mode).items():
            clean()
            to_o, to_b = _pairs(lambda i, s=src: rh.folder(path=str(s)).to(
                cluster, path=f"{remote_root}/o{i}"), rsync_to(src), repeats, clean)
            kept = rh.folder(path=str(src)).to(cluster, path=f"~/bench-kept-{name}")
            from_o, from_b = _pairs(lambda i, f=kept: f.to("here", path=str(out_root / f"o{i}")),
                                    rsync_from(kept.path), repeats, clean)
            kept.rm()
            rows += [_row(f"data_{name}_to_byo", to_o, to_b, "rsync -a of the same tree, same SSH"),
                     _row(f"data_{name}_from_byo", from_o, from_b,
                          "rsync -a of the copy on the node, same SSH")]
    finally:
        os.environ.pop("RH_QUIET", None)
        if cluster is not None:
            cluster.down()
        sshd.stop()
        shutil.rmtree(out_root, ignore_errors=True)
    return rows


def bench_table_stream(ctx: dict, mode: str) -> list[dict]:
    """``t.stream()`` of a Parquet table of about 1 GB on disk (256 MB with --quick) against
    pyarrow's own dataset reader over the same files: MiB of files read per second."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as ds

    import rh_core as rh
    from rh_core.resources.data import parquet

    target = TABLE_BYTES[mode]
    rows_per_write = 4_000_000  # 8 float64 columns: about 256 MB of incompressible data
    rng = np.random.default_rng(0)
    t = None
    written = 0
    while written < target:
        batch = pa.table({f"c{j}": rng.random(rows_per_write) for j in range(8)})
        if t is None:
            t = rh.table(data=batch, path=str(ctx["workdir"] / "table"))
        else:
            t.write(batch)
        written = sum(p.stat().st_size for p in Path(t.path).glob("*.parquet"))
    files = [os.path.join(t.path, n) for n in parquet.part_names(t.place, t.path)]
    batch_size = 100_000

    def ours():
        n = sum(b.num_rows for b in t.stream(batch_size=batch_size))
        assert n > 0

    def theirs():
        n = sum(b.num_rows for b in ds.dataset(files, format="parquet").to_batches(
            batch_size=batch_size))
        assert n > 0

    # Reading from the page cache takes a fraction of a second: more rounds steady the medians.
    t_ours, t_base = _pairs(lambda i: ours(), lambda i: theirs(), 3 * REPEATS[mode] + 2,
                            lambda: None)
    mib = written / MIB
    shutil.rmtree(t.path, ignore_errors=True)
    return [{"key": "table_stream", "figure": FIGURES["table_stream"],
             "ours": mib / statistics.median(t_ours), "baseline": mib / statistics.median(t_base),
             "unit": "MiB/s", "baseline_name": f"pyarrow.dataset over the same {len(files)} "
                                               f"files ({mib:.0f} MiB), to_batches",
             "samples": {"ours": summary(t_ours), "baseline": summary(t_base)}}]
