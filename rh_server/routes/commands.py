"""``POST /commands``: shell commands or Python code run on the server's node, as the server's
user, in its home folder (``cluster.run``, ``cluster.run_python``, ``cluster.run_setup``).
Running anything there is write access on ``*``. Needs the auth part and the served envs (for the
Python of an env)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from rh_core.paths import write_private
from rh_core.plugin import AccessLevel
from rh_server.auth import Auth
from rh_server.served import Served
from rh_server.web import JSONRoute, bad_request, guarded, read_body

MAX_OUTPUT = 4 << 20


def routes(auth: Auth, served: Served) -> list[JSONRoute]:
    setup_file = served.home / "server" / served.ctx.cluster_name / "setup.done"

    async def commands(request: Request):
        """Run each command in turn; ``[[returncode, stdout, stderr], ...]``."""
        auth.check(request, "*", AccessLevel.WRITE)
        spec = _spec(await read_body(request, 1))
        env = {k: v for k, v in os.environ.items() if k != "RH_SERVER_TOKEN"}
        env.update(served.worker_env)  # so that rh.here works in what runs there too
        if spec["python"]:
            pool = served.pools.get(spec["env"] or "")
            python = pool.python if pool is not None and pool.python else sys.executable
            argv = [[python, "-c", "\n".join(spec["commands"])]]
        else:
            argv = [["/bin/sh", "-c", c] for c in spec["commands"]]
        done = _read(setup_file) if spec["setup"] else set()
        results = []
        for args in argv:
            digest = hashlib.sha256(args[-1].encode()).hexdigest()[:16]
            if spec["setup"] and digest in done:
                results.append([0, "", "(already run on this cluster)"])
                continue
            code, out, err = await _run(args, env, spec["timeout"])
            results.append([code, out, err])
            if spec["setup"]:
                if code != 0:
                    break  # the rest depend on it; nothing is recorded for it
                done.add(digest)
                write_private(setup_file, "\n".join(sorted(done)) + "\n")
        return JSONResponse({"results": results})

    return [JSONRoute("/commands", guarded(commands), methods=["POST"])]


def _spec(raw: bytes) -> dict:
    try:
        spec = json.loads(raw)
        commands = spec["commands"]
        if isinstance(commands, str):
            commands = [commands]
        if not commands or not all(isinstance(c, str) and c and "\0" not in c for c in commands):
            raise TypeError("'commands' must be a list of non-empty strings without NUL bytes")
        timeout = spec.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or not 0 < timeout <= 86400):
            raise TypeError("'timeout' must be a number of seconds from 0 to 86400")
        env = spec.get("env")
        if env is not None and not isinstance(env, str):
            raise TypeError("'env' must be an env's name")
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise bad_request("give {'commands': [COMMAND, ...], 'python': false, 'env': null, "
                          f"'setup': false, 'timeout': null}} ({e})") from None
    return {"commands": commands, "python": bool(spec.get("python")), "env": env,
            "setup": bool(spec.get("setup")), "timeout": timeout}


async def _run(argv: list[str], env: dict, timeout: float | None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=Path.home(), env=env, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        err += f"\n(stopped: it ran longer than {timeout} s)".encode()
    return (proc.returncode, out[-MAX_OUTPUT:].decode(errors="replace"),
            err[-MAX_OUTPUT:].decode(errors="replace"))


def _read(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except FileNotFoundError:
        return set()
