"""``PUT /secrets/{name}``: a secret's files written in the server user's home, and its
variables given to an env's workers (``secret.to(cluster)``). Write access on ``*``.

The values come in the request body only (never a command line, which every local user can read
in ``/proc``), are never logged, and are not kept on disk by the server: files go where their
tools look for them (mode 0600, owned by the server's user), variables stay in memory and reach
the workers' environment. A restarted server needs the secret sent again for its variables.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from rh_core import secret_files
from rh_core.errors import ConfigError
from rh_core.plugin import AccessLevel
from rh_server.auth import Auth
from rh_server.served import Served
from rh_server.web import JSONRoute, bad_request, check_name, guarded, read_body

SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SHAPE = ("give {'files': [{'path': '~/...', 'content': TEXT} or {'path': ..., 'ini': {SECTION: "
         "{KEY: TEXT}}}], 'env': ENV_NAME or null, 'env_vars': {NAME: TEXT}, 'path_vars': "
         "{NAME: '~/...'}}")


def routes(auth: Auth, served: Served) -> list[JSONRoute]:
    async def put_secret(request: Request):
        """Write the secret's files and set its variables (see docs/server.md)."""
        auth.check(request, "*", AccessLevel.WRITE)
        name = request.path_params["name"]
        if not SECRET_NAME.match(name):
            raise bad_request(f"bad secret name {name!r:.80}: use 1-100 letters, digits, '_', "
                              f"'-' or '.', starting with a letter, digit or '_'")
        spec = _spec(await read_body(request, 4))
        home = Path.home()
        try:
            written = [await asyncio.to_thread(secret_files.place, f["path"], home,
                                               f.get("content"), f.get("ini"), True)
                       for f in spec["files"]]
            paths = {var: str(secret_files.resolve(p, home, True))
                     for var, p in spec["path_vars"].items()}
        except ConfigError as e:
            raise bad_request(str(e)) from None
        except OSError as e:  # a name too long, a read-only or full disk: say which file
            raise bad_request(f"cannot write the secret's files: {e.strerror} "
                              f"({e.filename!s:.200})") from None
        env_vars = {**spec["env_vars"], **paths}
        await served.restored.wait()
        await served.put_secret(name, spec["env"], env_vars, written)
        return JSONResponse({"name": name, "files": written, "env": spec["env"],
                             "env_vars": sorted(env_vars)})

    return [JSONRoute("/secrets/{name}", guarded(put_secret), methods=["PUT"])]


def _text_map(value, what: str, names: re.Pattern | None = None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise TypeError(f"'{what}' must map names to text")
    if any("\x00" in k or "\x00" in v for k, v in value.items()):
        raise TypeError(f"'{what}' holds a NUL character")
    for key in value:
        if names is not None and (not names.match(key) or key.upper().startswith("RH_")):
            raise TypeError(f"{key!r:.80} in '{what}' is not a variable name (letters, digits, "
                            f"'_'; not RH_..., which are rh's own)")
    return value


def _spec(raw: bytes) -> dict:
    try:
        spec = json.loads(raw)
        if not isinstance(spec, dict):
            raise TypeError("the body must be a JSON object")
        files = spec.get("files") or []
        if not isinstance(files, list):
            raise TypeError("'files' must be a list")
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not f["path"]:
                raise TypeError("each file needs a 'path'")
            if "\x00" in f["path"]:
                raise TypeError("a file's 'path' holds a NUL character")
            if ("content" in f) == ("ini" in f):
                raise TypeError("each file has either 'content' or 'ini'")
            if "content" in f and not isinstance(f["content"], str):
                raise TypeError("a file's 'content' is text")
            if "ini" in f:
                if not isinstance(f["ini"], dict):
                    raise TypeError("a file's 'ini' maps sections to keys")
                for section, keys in f["ini"].items():
                    _text_map(keys, f"ini.{section:.40}")
        env = spec.get("env")
        if env is not None:
            check_name(env, "env name")
        return {"files": files, "env": env,
                "env_vars": _text_map(spec.get("env_vars"), "env_vars", ENV_VAR),
                "path_vars": _text_map(spec.get("path_vars"), "path_vars", ENV_VAR)}
    except (ValueError, TypeError, RecursionError) as e:
        raise bad_request(f"{SHAPE} ({e})") from None
