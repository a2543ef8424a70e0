"""``.map``/``.starmap`` spread over every node of a cluster through Ray.

On a cluster of several nodes the server runs with ``RH_RAY_ADDRESS`` set (the Ray head the
provider started). A map then reaches one env worker as a single message holding all chunks;
that worker (the Ray driver) submits one Ray task per chunk, spread over the nodes, and answers
the chunks' results in input order. A task runs in a Ray worker process on some node, in the
virtualenv rh installed there; it loads the function the same way an env worker does (from the
code root synced to that node, or from the pickled code), builds the env's packages on that node
the first time, and runs its chunk. Payloads stay bytes end to end: nothing is unpickled on the
driver.

``python -m rh_server.ray_map wait ADDRESS N SECONDS`` waits until N nodes have joined (the
provider runs it on the head node during bring-up).

Ray is optional (the ``ray`` extra, shipped to multi-node clusters only) and takes seconds to
import, so every function imports it where it needs it.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import site
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from rh_core.transport import wire
from rh_server.envs import env_python
from rh_server.loader import CodeLoader

_lock = threading.Lock()
_task = None


def node_path(path: str | None) -> str | None:
    """A path under the rh home on the head node, as the same path under this node's rh home
    (nodes may have different home folders)."""
    if not path or "/.rh/" not in path:
        return path
    return str(Path.home() / ".rh" / path.split("/.rh/", 1)[1])


def _connect():
    """``ray.init`` once per process (the env worker that drives maps), and the task function."""
    global _task
    with _lock:
        if _task is None:
            # Ray: optional and slow to import (see the module's docstring).
            import ray

            if not ray.is_initialized():
                ray.init(address=os.environ["RH_RAY_ADDRESS"], logging_level="ERROR",
                         log_to_driver=False, configure_logging=False)
            _task = ray.remote(max_retries=0)(_run_chunk)
        return _task


def run(spec: dict, header: dict, chunks: list, refs: dict) -> bytes:
    """Run every chunk as a Ray task; the packed chunk results, in order. Raises the first
    failing item's exception, with the node and its traceback as notes."""
    # Ray: optional and slow to import (see the module's docstring).
    import ray

    task = _connect()
    env = header["ray"].get("env") or {}
    offsets = header.get("offsets") or [0] * len(chunks)
    small = {k: header[k] for k in ("name", "method", "logs") if k in header}
    ref_ids = {k: ray.put(bytes(v)) for k, v in refs.items()}
    slots = _slots()
    futures = [
        task.options(scheduling_strategy=slots[i % len(slots)] if slots else "SPREAD").remote(
            spec, env, small, bytes(chunk), offsets[i] if i < len(offsets) else 0, ref_ids)
        for i, chunk in enumerate(chunks)
    ]
    results = ray.get(futures)
    for ok, value, out, err in results:  # the items' output, in input order, to the caller
        if out:
            sys.stdout.write(out)
        if err:
            sys.stderr.write(err)
        if not ok:
            raise _rebuild(value)
    return wire.joined(wire.pack_parts([value for _, value, _, _ in results]))


def _slots() -> list:
    """One scheduling strategy per CPU of every live node, interleaved node by node, so that
    chunks dealt out in turn land on every node in proportion to its CPUs (Ray's own SPREAD
    keeps short tasks on the head while the other nodes' worker processes are still starting).
    Soft: a chunk whose node went away runs elsewhere."""
    # Ray: optional and slow to import (see the module's docstring).
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [(n["NodeID"], int(n.get("Resources", {}).get("CPU", 0)))
             for n in ray.nodes() if n.get("Alive")]
    order = []
    for round_ in range(max((cpus for _, cpus in nodes), default=0)):
        order += [node for node, cpus in nodes if cpus > round_]
    return [NodeAffinitySchedulingStrategy(node, soft=True) for node in order]


def _rebuild(err: dict) -> BaseException:
    exc = None
    if err.get("pickled"):
        try:
            exc = pickle.loads(err["pickled"])
        except Exception:  # noqa: BLE001 - an exception type only that node can import
            exc = None
    if not isinstance(exc, BaseException):
        exc = RuntimeError(err["summary"])
    exc.add_note(f"(in map item {err['item']}, on node {err['node']}; its traceback there:)\n"
                 f"{err['traceback']}")
    return exc


# ------------------------------------------------------------------ on every node

_loader = None
_envs: dict[str, None] = {}


def _prepare(env: dict) -> None:
    """Put the env's packages (built on this node the first time) ahead on ``sys.path``."""
    if not env.get("reqs") or env.get("key") in _envs:
        return
    spec = dict(env, working_dir=node_path(env.get("working_dir")))
    home = Path.home() / ".rh"
    cwd = Path(spec.get("working_dir") or home)
    python = env_python(spec, home, cwd, lambda line: None)
    if python != sys.executable:
        venv = Path(python).parent.parent
        before = list(sys.path)
        for d in venv.glob("lib/python*/site-packages"):
            site.addsitedir(str(d))
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + before
    _envs[env.get("key", "")] = None


def _run_chunk(spec: dict, env: dict, header: dict, chunk: bytes, offset: int, refs: dict):
    """One chunk on whichever node Ray chose: ``(True, result bytes, stdout, stderr)`` or
    ``(False, error, stdout, stderr)``; the output only when the caller streams logs."""
    out, err = io.StringIO(), io.StringIO()
    keep = header.get("logs")
    with contextlib.redirect_stdout(out if keep else sys.stdout), \
            contextlib.redirect_stderr(err if keep else sys.stderr):
        ok, value = _chunk(spec, env, chunk, offset, refs)
    return ok, value, out.getvalue(), err.getvalue()


def _chunk(spec: dict, env: dict, chunk: bytes, offset: int, refs: dict):
    global _loader
    item = offset
    try:
        # Ray: optional and slow to import (see the module's docstring).
        import ray


        _prepare(env)
        if _loader is None:
            _loader = CodeLoader()
        target = _loader.load(spec, root_map=node_path)
        resolved = {k: wire.loads_pickle(ray.get(v)) for k, v in refs.items()}
        items = wire.loads_pickle(chunk, resolved.__getitem__)
        results = []
        for i, (args, kwargs) in enumerate(items):
            item = offset + i
            results.append(target(*args, **kwargs))
        return True, wire.joined(wire.dumps_pickle(results))
    except BaseException as e:  # noqa: BLE001 - sent back to the driver
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        return False, {
            "pickled": wire.pickled_exception(e),
            "summary": f"{type(e).__name__}: {e}",
            "traceback": "".join(traceback.format_exception(type(e), e, tb)),
            "item": item,
            "node": _node_address(),
        }


def _node_address() -> str:
    try:
        # Ray: optional and slow to import (see the module's docstring).
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - only for the message
        return socket.gethostname()


def wait(address: str, nodes: int, seconds: float) -> int:
    """Wait until ``nodes`` Ray nodes are alive; prints how many there are."""
    # Ray: optional and slow to import (see the module's docstring).
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    deadline = time.monotonic() + seconds
    alive = 0
    while time.monotonic() < deadline:
        alive = sum(1 for n in ray.nodes() if n.get("Alive"))
        if alive >= nodes:
            break
        time.sleep(0.3)
    print(f"RH_RAY_NODES {alive}", flush=True)
    return 0 if alive >= nodes else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["wait"]:
        code = wait(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        sys.stdout.flush()
        os._exit(code)  # no Ray atexit work: the caller is waiting on this process's output
    sys.exit("usage: python -m rh_server.ray_map wait ADDRESS NODES SECONDS")
