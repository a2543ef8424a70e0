"""Envs (a worker process with its own variables and packages) and package specs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
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


#: How a GitPackage can be installed: the ``git`` installer runs ``pip install git+URL@revision``.
GIT_INSTALL_METHODS = ("pip",)


def _git_method(inst, attr, value):
    if value not in GIT_INSTALL_METHODS:
        raise ConfigError(
            f"install_method {value!r} is not supported for a GitPackage: the git installer "
            f"installs it with pip (pip install git+URL@revision), so use install_method='pip'. "
            f"For a repository's requirements file or a folder on sys.path, clone it and use "
            f"'reqs:path/requirements.txt' or 'local:path'")


def _git_url(inst, attr, value):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"a GitPackage needs git_url, the repository's URL; got {value!r}")


@attrs.define(kw_only=True, slots=False)
class GitPackage(Resource):
    """A package from a git repository at a revision (Runhouse's ``rh.GitPackage``), installed
    by the ``git`` installer; use it in ``rh.env(reqs=[...])``. ``str()`` gives its spec,
    ``git:URL@revision``."""

    resource_type: ClassVar[str] = "git_package"

    #: The repository, as pip takes it after ``git+`` (``https://...``, ``ssh://...``, ``file://...``).
    git_url: str = attrs.field(validator=_git_url)
    #: A tag, branch or commit; the default branch when None.
    revision: str | None = None
    install_method: str = attrs.field(default="pip", validator=_git_method)

    def __attrs_post_init__(self):
        if self.git_url.startswith("git+"):  # pip's spelling: the installer adds it
            self.git_url = self.git_url[4:]

    def __str__(self) -> str:
        return f"git:{self.git_url}" + (f"@{self.revision}" if self.revision else "")


@attrs.define(kw_only=True, slots=False)
class Env(Resource):
    """Where a function runs on the cluster: a worker process pool with its variables and packages.

    An env with packages gets its own virtualenv on the cluster, layered over the server's Python
    and cached by its package list.
    """

    resource_type: ClassVar[str] = "env"

    name: str | None = attrs.field(default=None, validator=_check_name)
    #: Package specs: ``"numpy"``, ``"reqs:requirements.txt"``, ``"local:./pkg"``, ``"git+URL@rev"``.
    reqs: list[str] = attrs.field(factory=list, converter=lambda v: [_spec(r) for r in v or []])
    #: Variables set in the worker processes (over those of ``env_file``).
    env_vars: dict[str, str] = attrs.field(factory=dict)
    #: A dotenv file (``.env``), read on this machine each time the env is sent to a cluster,
    #: relative to the working directory then. Only its path is in the config, not its values.
    env_file: str | None = None
    #: Folder the worker runs in (added to ``sys.path``); the server's folder when None.
    working_dir: str | None = None
    #: Worker processes (calls are spread over them; a module instance lives in one).
    processes: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    #: Threads per worker process: how many calls one process runs at once.
    threads: int = attrs.field(default=8, validator=attrs.validators.ge(1))

    def __attrs_post_init__(self):
        for r in self.reqs:
            Package.parse(r)  # fail early on a bad spec
        if isinstance(self.env_vars, (str, os.PathLike)):  # env_vars=".env", as Runhouse wrote it
            if self.env_file:
                raise ConfigError("give the dotenv file once: env_vars='.env' or env_file='.env'")
            self.env_file, self.env_vars = os.fspath(self.env_vars), {}
        if not isinstance(self.env_vars, dict):
            raise ConfigError(f"env_vars must be a dict or the path of a .env file, got "
                              f"{type(self.env_vars).__name__}")
        for k, v in self.env_vars.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(f"env_vars must map str to str, got {k!r}: {v!r}")

    def variables(self) -> dict[str, str]:
        """What the worker processes get: the variables of ``env_file`` (read now), then
        ``env_vars``."""
        if not self.env_file:
            return dict(self.env_vars)
        return {**read_env_file(self.env_file), **self.env_vars}

    @property
    def key(self) -> str:
        """The name the server knows this env by."""
        if self.name:
            return self.name.rsplit("/", 1)[-1]
        if not (self.reqs or self.env_vars or self.env_file or self.working_dir) and \
                (self.processes, self.threads) == (1, 8):
            return "base"
        settings = [self.reqs, self.env_vars, self.working_dir, self.processes, self.threads]
        blob = json.dumps(settings + ([self.env_file] if self.env_file else []), sort_keys=True)
        return "env-" + hashlib.sha256(blob.encode()).hexdigest()[:10]


def read_env_file(path: str) -> dict[str, str]:
    """The variables of a dotenv file, relative to the working directory: ``KEY=VALUE`` lines,
    ``export`` prefixes, quotes, comments, blank lines, ``${VAR}`` (python-dotenv's rules)."""
    # python-dotenv is needed only by envs that read a file (import time).
    from dotenv import dotenv_values

    given = Path(path).expanduser()
    full = given if given.is_absolute() else Path.cwd() / given
    if not full.is_file():
        raise ConfigError(f"the env_vars file {path!r} was not found: looked for {full} "
                          f"(a relative path is taken from the working directory, {Path.cwd()})")
    values = dotenv_values(full)
    bare = [k for k, v in values.items() if v is None]
    if bare:
        raise ConfigError(f"{full}: {', '.join(bare)} has no value; write KEY=VALUE (KEY= for "
                          f"an empty value)")
    return dict(values)


def _spec(req):
    """A package spec as text: ``"numpy"`` as it is, a Package or GitPackage as its spec."""
    return str(req) if isinstance(req, (Package, GitPackage)) else req


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
