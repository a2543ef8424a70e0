"""Env worker pools: an env's worker processes (:mod:`rh_server.process`), what has been defined
in them, starting them and starting them again when they die."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

from rh_server import protocol as P
from rh_server.process import EnvReplaced, WorkerProcess

log = logging.getLogger("rh_server")


class EnvPool:
    """The worker processes of one env, and what has been defined in them (for restarts)."""

    def __init__(self, key: str, spec: dict, home: Path, base_env: dict | None = None):
        self.key, self.spec, self.home = key, spec, home
        #: What every worker of this server gets (how to reach its own server: ``rh.here``).
        self.base_env = dict(base_env or {})
        self.workers: list[WorkerProcess] = []
        #: name -> (define spec, extra parts, worker index or None for all)
        self.defines: dict[str, tuple[dict, list, int | None]] = {}
        self._lock = asyncio.Lock()
        self._rr = itertools.count()
        self.python: str | None = None
        self.stopped = False

    async def ensure_started(self, build_python) -> None:
        async with self._lock:
            if self.python is None:
                self.python = await build_python(self.spec)
            if not self.workers:
                n = int(self.spec.get("processes", 1))
                self.workers = [self._new_worker(i) for i in range(n)]
            for w in self.workers:
                if not w.alive:
                    if w.proc is not None:
                        w.restarts += 1
                    await w.start()
                    if self.stopped:  # replaced while it started (e.g. the base env's,
                        await w.kill()  # begun before the first call asked for other settings)
                        raise EnvReplaced(f"env {self.key!r} was replaced while it started")
                    for name, (spec, extra, idx) in self.defines.items():
                        if idx is None or idx == w.index:
                            kind, got = await w.ask(P.DEFINE, [P.jpart(spec), *extra])
                            if kind == P.ERROR:
                                log.warning("replaying %s failed: %s", name, got[0][:500])

    def _new_worker(self, i: int) -> WorkerProcess:
        return WorkerProcess(
            self.key, i, self.python, {**self.base_env, **(self.spec.get("env_vars") or {})},
            self.spec.get("working_dir"), int(self.spec.get("threads", 8)),
            self.home / "logs" / f"env-{self.key}.log",
        )

    async def define(self, spec: dict, extra: list) -> tuple[bytes, list]:
        """Define a function/class/instance in the workers; returns the first error if any."""
        if spec["kind"] == "instance":
            idx = next(self._rr) % len(self.workers)
            targets = [self.workers[idx]]
        else:
            idx, targets = None, self.workers
        result: tuple[bytes, list] = (P.RESULT, [])
        for w in targets:
            kind, got = await w.ask(P.DEFINE, [P.jpart(spec), *extra])
            if kind == P.ERROR:
                return kind, got
        self.defines[spec["name"]] = (spec, extra, idx)
        return result

    async def forget(self, name: str) -> None:
        entry = self.defines.pop(name, None)
        if entry is None:
            return
        for w in self.workers:
            if w.alive and (entry[2] is None or entry[2] == w.index):
                await w.ask(P.DELETE, [P.jpart({"name": name})])

    def pick(self, name: str) -> WorkerProcess:
        entry = self.defines.get(name)
        if entry is not None and entry[2] is not None:
            return self.workers[entry[2]]
        if len(self.workers) == 1:
            return self.workers[0]
        live = [w for w in self.workers if w.alive] or self.workers
        return min(live, key=lambda w: len(w.pending))

    def slots(self) -> int:
        return len(self.workers) * int(self.spec.get("threads", 8))

    async def stop(self) -> None:
        self.stopped = True  # a start still in progress stops what it started (ensure_started)
        await asyncio.gather(*(w.kill() for w in self.workers), return_exceptions=True)
        self.workers = []

    def status(self) -> dict:
        return {
            "spec": {k: v for k, v in self.spec.items() if k != "env_vars"},
            "env_var_names": sorted((self.spec.get("env_vars") or {}).keys()),
            "python": self.python,
            "workers": [
                {"index": w.index, "pid": w.pid, "alive": w.alive, "running": len(w.pending),
                 "restarts": w.restarts}
                for w in self.workers
            ],
            "resources": sorted(self.defines),
        }
