"""Functions sent to a cluster: ``rh.function(fn).to(cluster)`` returns a remote callable."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.base import Resource, load
from rh_core.resources.calls import RemoteCallable
from rh_core.resources.cluster import Cluster
from rh_core.resources.code import call_kind, code_ref
from rh_core.resources.env import Env, Package, as_env
from rh_core.resources.factories import cluster


def as_cluster(system: Any):
    """A Cluster from what users pass: a Cluster, ``"local"``, a saved cluster's name, a config."""
    if isinstance(system, Cluster):
        return system
    if isinstance(system, dict):
        return Resource.from_config(system)
    if isinstance(system, str):
        return cluster(system)
    raise ConfigError(f"expected a cluster (rh.cluster(...) or its name), got {system!r}")


def env_spec(env: Env) -> dict:
    """What the server needs of an env; relative package paths resolved here."""
    reqs = []
    for r in env.reqs:
        p = Package.parse(r)
        if p.installer in ("local", "reqs") and not Path(p.spec).expanduser().is_absolute():
            p = Package(installer=p.installer, spec=str(Path(p.spec).expanduser().resolve()))
        reqs.append(str(p))
    wd = env.working_dir and str(Path(env.working_dir).expanduser().resolve())
    return {"key": env.key, "reqs": reqs, "env_vars": env.variables(), "working_dir": wd,
            "processes": env.processes, "threads": env.threads}


def _served_name(name: str | None, code: Code) -> str:
    if name:
        return name.rsplit("/", 1)[-1].lstrip("~^@")
    return code.server_name or code.short_name or code.qualname.split(".")[-1]


@attrs.define(kw_only=True, slots=False)
class Code(Resource):
    """Shared fields of functions and modules: where the code is and where it is served."""

    #: ``{"module", "qualname", "root"}`` for importable code.
    pointer: dict | None = None
    #: base64 cloudpickle, for code defined in ``__main__`` or a notebook.
    code: str | None = attrs.field(default=None, repr=False)
    qualname: str | None = None
    #: Config of the cluster it is served on (None until ``.to()``).
    system: dict | None = attrs.field(default=None, repr=False)
    env: Env | None = None
    #: The name the cluster serves it under (set by ``.to()``; saving under another name keeps it).
    server_name: str | None = None

    @property
    def served_as(self) -> str:
        """The name the cluster knows this by."""
        return self.server_name or self.short_name

    @property
    def cluster(self):
        """The cluster this is served on."""
        if self.system is None:
            raise ConfigError(f"{self.qualname or self.name} is not on a cluster yet: call .to(cluster)")
        rt = self.__dict__.get("_cluster")
        if rt is None:
            rt = self.__dict__["_cluster"] = Resource.from_config(self.system)
        return rt

    def _put(self, cluster, kind: str, server_name: str, env: Env, replace: bool, **extra) -> None:
        pointer = self.pointer
        if pointer and pointer.get("root"):
            pointer = dict(pointer, root=cluster.provider.sync_code(pointer["root"]))
        spec = {"kind": kind, "pointer": pointer, "code": self.code, "qualname": self.qualname,
                "env": env_spec(env), "replace": replace, **extra}
        cluster.client().put(server_name, spec)

    def endpoint(self) -> str:
        """The HTTP URL of this resource on its cluster."""
        return f"{self.cluster.client().info.base_url}/{self.served_as}"

    def _ssh_cluster(self, what: str):
        cluster = self.cluster
        if not callable(getattr(cluster, what, None)):
            raise ConfigError(
                f"{self.served_as} runs on cluster {cluster.short_name!r} (provider "
                f"{cluster.subtype!r}), which is not reached over SSH: it has no {what}(). "
                f"Clusters of machines you SSH into (rh-byo) have one")
        return cluster

    def ssh(self, command: str | None = None) -> int:
        """A shell (or one command) on the head node of its cluster: ``cluster.ssh()``; the exit
        code. Only clusters reached over SSH have one."""
        return self._ssh_cluster("ssh").ssh(command)

    def notebook(self, port: int = 8888) -> str:
        """JupyterLab on the head node of its cluster: ``cluster.notebook()``; the URL to open.
        Only clusters reached over SSH have one."""
        return self._ssh_cluster("notebook").notebook(port)


@attrs.define(kw_only=True, slots=False)
class Function(Code, RemoteCallable):
    """A function that runs on a cluster when called."""

    resource_type: ClassVar[str] = "function"

    #: ``sync``, ``gen``, ``async`` or ``asyncgen``: how calling it returns.
    kind: str = "sync"
    #: Print the remote stdout/stderr live during every call (per call: ``stream_logs=``).
    stream_logs: bool = False

    @property
    def _stream_logs(self) -> bool:
        return self.stream_logs

    def to(self, system: Any = "local", env: Env | list | str | None = None,
           name: str | None = None, replace: bool = False) -> Function:
        """Serve this function on ``system`` (bringing it up if needed); returns the remote callable."""
        cluster = as_cluster(system)
        env_ = as_env(env if env is not None else self.env)
        served = _served_name(name, self)
        new = attrs.evolve(self, name=name or self.name or served, server_name=served,
                           system=cluster.config(), env=env_)
        new.__dict__["_cluster"] = cluster
        new._put(cluster, "function", served, env_, replace)
        return new

    def _target(self):
        return self.cluster, self.served_as, "call", self.kind

    def delete(self) -> None:
        """Stop serving this function on its cluster."""
        self.cluster.delete(self.served_as)


def function(fn: Callable | None = None, name: str | None = None, system: Any = None,
             env: Env | list | str | None = None, stream_logs: bool = False,
             serialize_notebook_fn: bool = False) -> Function:
    """Wrap ``fn`` to send it to a cluster, or load a saved function by ``name``.

    ``serialize_notebook_fn=True`` sends the function itself (cloudpickle, as for one defined
    in a notebook) even when its module is importable: its module then need not exist there.
    """
    if fn is None:
        if not name:
            raise ConfigError("rh.function needs a function, or the name of a saved one")
        loaded = load(name)
        if not isinstance(loaded, Function):
            raise ConfigError(f"{name!r} is a {loaded.resource_type}, not a function")
        return loaded
    if not callable(fn):
        raise ConfigError(f"rh.function takes a function, got {type(fn).__name__}")
    pointer, code = code_ref(fn, by_value=serialize_notebook_fn)
    f = Function(name=name, pointer=pointer, code=code, qualname=fn.__qualname__,
                 kind=call_kind(fn), env=as_env(env) if env is not None else None,
                 stream_logs=stream_logs)
    return f.to(system, env=env, name=name) if system is not None else f


def send(fn: Callable | None = None, name: str | None = None, system: Any = None,
         env: Env | list | str | None = None, stream_logs: bool = False,
         serialize_notebook_fn: bool = False, *, hardware: Any = None,
         reqs: list | None = None) -> Function:
    """Runhouse's older name for :func:`function`, with the same arguments; it also takes
    Runhouse's ``hardware=`` (``system=``) and ``reqs=`` (``env=`` as a list of packages)."""
    if hardware is not None and system is not None:
        raise ConfigError("rh.send: give the cluster once, as system= or hardware=")
    if reqs is not None and env is not None:
        raise ConfigError("rh.send: give the packages once, as env= or reqs=")
    return function(fn, name=name, system=system if hardware is None else hardware,
                    env=env if reqs is None else list(reqs), stream_logs=stream_logs,
                    serialize_notebook_fn=serialize_notebook_fn)
