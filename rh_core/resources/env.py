"""Envs (a worker process with its own variables and packages) and package specs."""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.names import resolve as rns
from rh_core.plugin.registry import registry
from rh_core.resources.base import Resource, load


def _check_name(inst, attr, value):
    last = value.rsplit("/", 1)[-1].lstrip("~^@") if value is not None else None
    if last is not None and (not last or not last.replace("-", "_").replace(".", "_").isidentifier()):
        raise ConfigError(f"bad env name {value!r}: use letters, digits, '_', '-' and '.'")


@attrs.define(kw_only=True, slots=False)
class Package(Resource):
    """One package spec: ``installer:spec`` (``pip`` when the prefix is not an installer)."""

    resource_type: ClassVar[str] = "package"

    installer: str = "pip"
    spec: str = ""

    @classmethod
    def parse(cls, text: str) -> Package:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"a package spec must be a non-empty string, got {text!r}")
        head, sep, rest = text.partition(":")
        if text.startswith("git+"):
            return cls(installer="git", spec=text[4:])
        if sep and head in registry().installers:
            return cls(installer=head, spec=rest)
        if sep and head.isidentifier() and not rest.startswith("//"):
            registry().installer(head)  # raises, listing the installed installers
        return cls(installer="pip", spec=text)

    def __str__(self) -> str:
        return self.spec if self.installer == "pip" else f"{self.installer}:{self.spec}"


@attrs.define(kw_only=True, slots=False)
class Env(Resource):
    """Where a function runs on the cluster: a worker process pool with its variables and packages.

    An env with packages gets its own virtualenv on the cluster, layered over the server's Python
    and cached by its package list.
    """

    resource_type: ClassVar[str] = "env"

    name: str | None = attrs.field(default=None, validator=_check_name)
    #: Package specs: ``"numpy"``, ``"reqs:requirements.txt"``, ``"local:./pkg"``, ``"git+URL@rev"``.
    reqs: list[str] = attrs.field(factory=list)
    env_vars: dict[str, str] = attrs.field(factory=dict)
    #: Folder the worker runs in (added to ``sys.path``); the server's folder when None.
    working_dir: str | None = None
    #: Worker processes (calls are spread over them; a module instance lives in one).
    processes: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    #: Threads per worker process: how many calls one process runs at once.
    threads: int = attrs.field(default=8, validator=attrs.validators.ge(1))

    def __attrs_post_init__(self):
        for r in self.reqs:
            Package.parse(r)  # fail early on a bad spec
        for k, v in self.env_vars.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(f"env_vars must map str to str, got {k!r}: {v!r}")

    @property
    def key(self) -> str:
        """The name the server knows this env by."""
        if self.name:
            return self.name.rsplit("/", 1)[-1]
        if not (self.reqs or self.env_vars or self.working_dir) and (self.processes, self.threads) == (1, 8):
            return "base"
        blob = json.dumps([self.reqs, self.env_vars, self.working_dir, self.processes, self.threads],
                          sort_keys=True)
        return "env-" + hashlib.sha256(blob.encode()).hexdigest()[:10]


def as_env(env: Env | str | list | None) -> Env:
    """Accept what users pass as ``env=``: an Env, a list of packages, a saved env's name, None."""
    if env is None:
        return Env()
    if isinstance(env, Env):
        return env
    if isinstance(env, (list, tuple)):
        return Env(reqs=list(env))
    if isinstance(env, str):
        if rns.exists(env):
            loaded = load(env)
            if not isinstance(loaded, Env):
                raise ConfigError(f"{env!r} is a {loaded.resource_type}, not an env")
            return loaded
        return Env(name=env)
    raise ConfigError(f"env must be an rh.env(...), a list of packages or a name, got {env!r}")
