"""What one server serves: the names put on it, the env worker pools that run them (this module
owns the workers), and the specs saved so that a restarted server serves them again."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import platform
import sys
import time
from pathlib import Path

from rh_core import __version__
from rh_core.errors import PackageInstallError
from rh_core.paths import write_private
from rh_core.plugin import ServerContext
from rh_core.resources.env import as_env
from rh_core.resources.function import env_spec
from rh_server import protocol as P
from rh_server.envs import env_python
from rh_server.pool import EnvPool
from rh_server.process import EnvReplaced, WorkerDied
from rh_server.web import HTTPProblem, bad_request, check_name

log = logging.getLogger("rh_server")
#: How often a start is tried again when the env is replaced meanwhile (requests asking for
#: different settings of one env at the same moment); more means they keep fighting.
_REPLACED_TRIES = 5

KINDS = {"function", "class", "instance"}


def validate_spec(spec: dict) -> None:
    """Refuse a PUT body whose fields have the wrong shape, saying which field and what fits."""
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise bad_request(f"'kind' must be one of {sorted(KINDS)}")
    ptr, code = spec.get("pointer"), spec.get("code")
    if ptr is not None:
        if not isinstance(ptr, dict) or not all(
                isinstance(ptr.get(k), str) and ptr.get(k) for k in ("module", "qualname")):
            raise bad_request("'pointer' must be {'module': str, 'qualname': str, 'root': str}")
        if not isinstance(ptr.get("root", ""), (str, type(None))):
            raise bad_request("'pointer.root' must be a path")
    if code is not None and (not isinstance(code, str) or not code):
        raise bad_request("'code' must be base64 cloudpickle text")
    if not ptr and not code:
        raise bad_request("give a 'pointer' (module, qualname) or 'code'")
    for key in ("of", "qualname", "init"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise bad_request(f"{key!r} must be a string")
    if kind == "instance" and not spec.get("of"):
        raise bad_request("an instance needs 'of': the served name of its class")
    if not isinstance(spec.get("replace", False), bool):
        raise bad_request("'replace' must be true or false")
    env = spec.get("env") or {}
    if not isinstance(env, dict):
        raise bad_request("'env' must be an object")
    if not isinstance(env.get("reqs", []), list) or not all(
            isinstance(r, str) and r for r in env.get("reqs", [])):
        raise bad_request("'env.reqs' must be a list of package specs")
    ev = env.get("env_vars", {})
    if not isinstance(ev, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                           for k, v in ev.items()):
        raise bad_request("'env.env_vars' must map names to strings")
    if not isinstance(env.get("working_dir"), (str, type(None))):
        raise bad_request("'env.working_dir' must be a path")
    for key, top in (("processes", 64), ("threads", 256)):
        value = env.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise bad_request(f"'env.{key}' must be an integer from 1 to {top}")


def identity(spec: dict) -> str:
    if spec["kind"] == "instance":
        return f"instance of {spec.get('of')}"
    if spec.get("pointer"):
        return f"{spec['pointer']['module']}:{spec['pointer']['qualname']}"
    return f"{spec.get('qualname', '?')} (pickled from __main__)"


class Served:
    """The names served on this server, their specs, and the env pools that run them."""

    def __init__(self, ctx: ServerContext, worker_env: dict | None = None):
        self.ctx = ctx
        #: Environment every env worker gets besides its env's variables (see rh_server.app).
        self.worker_env = dict(worker_env or {})
        self.home = ctx.rh_home
        self.started = time.time()
        #: name -> {name, kind, env, identity, created}
        self.resources: dict[str, dict] = {}
        #: env key -> its pool of worker processes
        self.pools: dict[str, EnvPool] = {}
        self.store = self.home / "server" / ctx.cluster_name / "resources"
        #: Set once the specs saved before a restart are served again (calls wait for it).
        self.restored = asyncio.Event()
        #: env key -> secret name -> variables sent with ``PUT /secrets``. Kept in memory only,
        #: never in a saved spec: a restarted server needs the secrets sent again.
        self.secret_env: dict[str, dict[str, dict[str, str]]] = {}
        #: secret name -> what ``/status`` shows of it (env, variable names, files; no value)
        self.secrets: dict[str, dict] = {}

    # -------------------------------------------------------------- envs

    async def pool_for(self, env: dict) -> EnvPool:
        """The pool of ``env`` with its workers started, replacing the env's pool (restarting
        its workers) when its settings differ from ``env``'s."""
        key = env.get("key") or "base"
        spec = {k: v for k, v in env.items() if k != "key"}
        for _ in range(_REPLACED_TRIES):
            pool = self.pools.get(key)
            if pool is not None and pool.spec != spec:
                log.info("env %s changed; restarting its workers", key)
                old = pool
                pool = EnvPool(key, spec, self.home, self._base_env(key))
                pool.defines = old.defines
                self.pools[key] = pool
                await old.stop()
            elif pool is None:
                pool = self.pools[key] = EnvPool(key, spec, self.home, self._base_env(key))
            try:
                await self._started(pool)
                return pool
            except EnvReplaced:  # another request changed the env meanwhile: settle it again
                continue
        raise WorkerDied(f"env {key!r} was replaced {_REPLACED_TRIES} times while it started "
                         f"(requests asking for different settings of it at once); send one "
                         f"set of settings per env")

    async def _started(self, pool: EnvPool) -> None:
        try:
            await pool.ensure_started(self._build_python)
        except PackageInstallError as e:
            raise HTTPProblem(422, "install", f"env {pool.key!r}: {e}") from None

    def _base_env(self, key: str) -> dict:
        """What every worker of env ``key`` gets besides its env's own variables: the secrets
        sent to it, and how to reach this server (which no secret may change)."""
        env: dict[str, str] = {}
        for variables in self.secret_env.get(key, {}).values():
            env.update(variables)
        return {**env, **self.worker_env}

    async def put_secret(self, name: str, env_key: str | None, env_vars: dict[str, str],
                         files: list[str]) -> None:
        """Give env ``env_key``'s workers the secret's variables (replacing what the secret gave
        before); workers running now are restarted with them, as for a changed env."""
        if env_key is not None:
            self.secret_env.setdefault(env_key, {})[name] = dict(env_vars)
            old = self.pools.get(env_key)
            if old is not None:
                log.info("secret %s sent to env %s; restarting its workers", name, env_key)
                pool = EnvPool(env_key, old.spec, self.home, self._base_env(env_key))
                pool.defines = old.defines
                self.pools[env_key] = pool
                await old.stop()
                await self.pool_for({"key": env_key, **old.spec})
        self.secrets[name] = {"env": env_key, "env_vars": sorted(env_vars), "files": files}

    async def _build_python(self, spec: dict) -> str:
        cwd = Path(spec.get("working_dir") or self.home)
        return await asyncio.to_thread(
            env_python, spec, self.home, cwd, lambda line: log.info("env: %s", line)
        )

    async def ready_pool(self, res: dict) -> EnvPool:
        """The pool a call of ``res`` runs in: its env's pool as it is now (a call never
        replaces an env; only a new definition does), its dead workers started again."""
        for _ in range(_REPLACED_TRIES):
            pool = self.pools.get(res["env"]["key"])
            if pool is None:
                return await self.pool_for(res["env"])
            if pool.workers and all(w.alive for w in pool.workers):
                return pool
            try:
                await self._started(pool)
                return pool
            except EnvReplaced:  # replaced while it started: the call runs in the new one
                continue
        raise WorkerDied(f"env {res['env']['key']!r} was replaced {_REPLACED_TRIES} times while "
                         f"this call waited for it")

    # -------------------------------------------------------------- resources

    async def put(self, spec: dict, persist: bool = True) -> dict:
        name = check_name(spec.get("name"))
        validate_spec(spec)
        kind = spec["kind"]
        env = spec.get("env") or {}
        env.setdefault("key", "base")
        check_name(env["key"], "env name")
        new_id = identity(spec)
        old = self.resources.get(name)
        if old is not None and old["identity"] != new_id and not spec.get("replace"):
            raise HTTPProblem(
                409, "clash",
                f"{name!r} is already served on this cluster by {old['identity']}; pick another "
                f"name (.to(cluster, name=...)) or replace it (.to(cluster, replace=True))",
            )
        if old is not None and old["env"]["key"] != env["key"]:
            await self.pools[old["env"]["key"]].forget(name)
        try:
            pool = await self.pool_for(env)
        except WorkerDied as e:
            raise HTTPProblem(500, "worker_crashed", str(e)) from None
        define = {k: spec[k] for k in ("name", "kind", "pointer", "code", "of", "qualname")
                  if k in spec}
        try:
            extra = [base64.b64decode(spec["init"], validate=True)] if spec.get("init") else []
        except ValueError:
            raise bad_request("'init' must be base64") from None
        kind_, got = await pool.define(define, extra)
        if kind_ == P.ERROR:
            err = json.loads(bytes(got[0]))
            raise HTTPProblem(422, "define", f"loading {name!r} on the cluster failed: "
                              f"{err['type']}: {err['message']}", traceback=err["traceback"])
        self.resources[name] = {"name": name, "kind": kind, "env": env, "identity": new_id,
                                "created": time.time()}
        if persist:
            write_private(self.store / f"{name}.json", json.dumps(spec))
        return {"name": name, "kind": kind, "env": env["key"], "identity": new_id}

    async def delete(self, name: str) -> bool:
        res = self.resources.pop(name, None)
        if res is None:
            return False
        pool = self.pools.get(res["env"]["key"])
        if pool:
            await pool.forget(name)
        (self.store / f"{name}.json").unlink(missing_ok=True)
        return True

    async def rename(self, old: str, new: str) -> dict:
        """Serve the class ``old`` under ``new`` instead. Its instances are the same objects in
        the workers; their saved specs now name ``new``, so they come back after a restart."""
        res = self.lookup(old)
        if res["kind"] != "class":
            raise bad_request(f"{old!r} is a {res['kind']}: only a served class can be renamed")
        if new in self.resources:
            raise HTTPProblem(409, "clash", f"{new!r} is already served on this cluster; pick "
                              f"another name, or delete it first")
        try:
            spec = json.loads((self.store / f"{old}.json").read_text())
        except (OSError, ValueError):
            raise HTTPProblem(409, "clash", f"the spec of {old!r} is not on this server; "
                              f"serve it again with .to()") from None
        answer = await self.put({**spec, "name": new, "replace": False})
        for path in sorted(self.store.glob("*.json")):
            inst = json.loads(path.read_text())
            if inst.get("kind") == "instance" and inst.get("of") == old:
                inst["of"] = new
                write_private(path, json.dumps(inst))
                if inst["name"] in self.resources:
                    self.resources[inst["name"]]["identity"] = identity(inst)
        await self.delete(old)
        return {**answer, "renamed_from": old}

    async def restore(self) -> None:
        """Serve again what was put before the last restart (instances get a fresh __init__)."""
        try:
            files = sorted(self.store.glob("*.json"), key=lambda p: p.stat().st_mtime)
            for f in files:
                try:
                    await self.put(json.loads(f.read_text()), persist=False)
                except Exception as e:  # noqa: BLE001 - one bad resource must not stop the rest
                    log.warning("could not restore %s: %s", f.stem, e)
        finally:
            self.restored.set()
        await self.prestart()

    async def prestart(self) -> None:
        """Start the base env's worker (the env of everything sent without ``env=``) before the
        first call asks for it: its Python starts while the client is still connecting and
        sending the function, instead of after. A call that comes meanwhile waits for this same
        worker; one whose base env differs restarts it, as any changed env does."""
        if "base" in self.pools:
            return
        try:
            await self.pool_for(env_spec(as_env(None)))
        except Exception as e:  # noqa: BLE001 - the first call starts it then, and says why
            log.warning("could not start the base env's worker ahead of calls: %s", e)

    def lookup(self, name: str) -> dict:
        res = self.resources.get(name)
        if res is None:
            raise HTTPProblem(
                404, "not_found",
                f"no function or module named {name!r} on cluster {self.ctx.cluster_name!r}; "
                f"served here: {sorted(self.resources) or 'nothing yet'}",
            )
        return res

    def status(self) -> dict:
        """What ``GET /status`` shows of the served names and envs (never env var values)."""
        return {
            "cluster": self.ctx.cluster_name,
            "version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "uptime_seconds": round(time.time() - self.started, 3),
            "den_auth": self.ctx.den_auth,
            "resources": {n: {"kind": r["kind"], "env": r["env"]["key"], "identity": r["identity"]}
                          for n, r in self.resources.items()},
            "envs": {k: p.status() for k, p in self.pools.items()},
            "secrets": self.secrets,
        }

    async def shutdown(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.pools.values()), return_exceptions=True)
