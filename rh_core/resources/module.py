"""Classes sent to a cluster: ``RemoteCls = rh.module(Cls).to(cluster)``; ``obj = RemoteCls(...)``
makes one instance on the cluster whose methods run there and keep its state between calls."""

from __future__ import annotations

import base64
import inspect
from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError, RemoteAttributeError, RemoteFunctionNotFound
from rh_core.resources.base import load
from rh_core.resources.calls import RemoteCallable, run_async_call
from rh_core.resources.code import code_ref, method_kinds, static_methods
from rh_core.resources.destination import sending_to
from rh_core.resources.env import Env, as_env
from rh_core.resources.function import Code, _served_name, as_cluster
from rh_core.transport import wire

#: Attribute names the notebook display protocols probe: never sent to the cluster.
_PROBES = ("_repr_", "_ipython_")


@attrs.define(kw_only=True, slots=False)
class Module(Code):
    """A class served on a cluster, or (``instance_of`` set) one named instance of it."""

    resource_type: ClassVar[str] = "module"

    #: Public methods and how each returns (``sync``, ``gen``, ``async``, ``asyncgen``).
    methods: dict[str, str] = attrs.field(factory=dict)
    #: Server name of the class, when this is an instance.
    instance_of: str | None = None
    #: Its classmethods and staticmethods, callable on the served class itself.
    class_methods: list[str] = attrs.field(factory=list)

    def to(self, system: Any = "local", env: Env | list | str | None = None,
           name: str | None = None, replace: bool = False) -> Module:
        """Serve the class on ``system``; call the result to make a remote instance."""
        cluster = as_cluster(system)
        env_ = as_env(env if env is not None else self.env)
        served = _served_name(name, self)
        new = attrs.evolve(self, name=name or self.name or served, server_name=served,
                           system=cluster.config(), env=env_, instance_of=None)
        new.__dict__["_cluster"] = cluster
        new._put(cluster, "class", served, env_, replace)
        return new

    def __call__(self, *args, name: str | None = None, **kwargs) -> Module:
        """Create an instance on the cluster (``__init__`` runs there) and return its handle."""
        if self.instance_of is not None:
            raise TypeError(f"{self.served_as} is an instance; call one of its methods")
        cluster = self.cluster
        inst_name = name.rsplit("/", 1)[-1].lstrip("~^@") if name else f"{self.served_as}_instance"
        with sending_to(cluster):  # data resources arrive as on calls
            init = wire.joined(wire.dumps_pickle((args, kwargs)))
        self._put(cluster, "instance", inst_name, self.env or Env(), True, of=self.served_as,
                  init=base64.b64encode(init).decode())
        inst = attrs.evolve(self, name=name or inst_name, server_name=inst_name,
                            instance_of=self.served_as)
        inst.__dict__["_cluster"] = cluster
        return inst

    def __getattr__(self, attr: str):
        if attr.startswith("__") or attr.startswith(_PROBES) or attr in _OWN:
            raise AttributeError(attr)
        d = self.__dict__
        if d.get("instance_of") is None:
            if attr in (d.get("class_methods") or ()):
                return RemoteMethod(self, attr, d["methods"].get(attr, "sync"))
            raise AttributeError(f"{attr!r}: create an instance first (obj = RemoteClass(...)); "
                                 f"on the class itself only its classmethods and staticmethods "
                                 f"are callable")
        if attr in d.get("methods", {}) and not attr.startswith("_"):
            return RemoteMethod(self, attr, d["methods"][attr])
        return self.fetch(attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        """On an instance handle, setting an attribute that is not the handle's own sets it on
        the object on the cluster (``remote_obj.size = 20``)."""
        if attr in _OWN or attr.startswith("__") or self.__dict__.get("instance_of") is None:
            object.__setattr__(self, attr, value)
            return
        self.cluster.client().call(self.served_as, "rh.setattr", (attr, value), {})

    def fetch(self, attr: str) -> Any:
        """The current value of the attribute ``attr`` of the object on the cluster (private
        ``_x`` attributes too). A method, or an attribute that is not there, raises."""
        try:
            return self.cluster.client().call(self.served_as, "rh.getattr", (attr,), {})
        except RemoteFunctionNotFound as e:
            raise RemoteAttributeError(str(e), e.status) from None

    async def fetch_async(self, attr: str) -> Any:
        """:meth:`fetch` as an awaitable."""
        return await run_async_call(self.fetch, attr)

    def rename(self, name: str) -> Module:
        """Serve this class under ``name`` instead; instances made before keep working (they
        are the same objects on the cluster). Returns this handle, renamed."""
        if self.instance_of is not None:
            raise ConfigError(f"{self.served_as} is an instance: rename its class, or make "
                              f"another instance with name=...")
        new = name.rsplit("/", 1)[-1].lstrip("~^@")
        self.cluster.client().rename(self.served_as, new)
        object.__setattr__(self, "server_name", new)
        object.__setattr__(self, "name", name if self.name and "/" in self.name else new)
        return self

    def delete(self) -> None:
        """Stop serving this class or instance on its cluster."""
        self.cluster.delete(self.served_as)


_OWN = frozenset(f.name for f in attrs.fields(Module))


class RemoteMethod(RemoteCallable):
    """One method of a remote instance."""

    def __init__(self, instance: Module, method: str, kind: str):
        self.instance, self.method, self.kind = instance, method, kind

    def _target(self):
        return self.instance.cluster, self.instance.served_as, self.method, self.kind

    def __repr__(self) -> str:
        return f"<remote method {self.instance.served_as}.{self.method}>"


def module(cls: type | None = None, name: str | None = None, system: Any = None,
           env: Env | list | str | None = None) -> Module:
    """Wrap a class to send it to a cluster, or load a saved module or instance by ``name``."""
    if cls is None:
        if not name:
            raise ConfigError("rh.module needs a class, or the name of a saved one")
        loaded = load(name)
        if not isinstance(loaded, Module):
            raise ConfigError(f"{name!r} is a {loaded.resource_type}, not a module")
        return loaded
    if not inspect.isclass(cls):
        raise ConfigError(f"rh.module takes a class, got {type(cls).__name__}")
    pointer, code = code_ref(cls)
    m = Module(name=name, pointer=pointer, code=code, qualname=cls.__qualname__,
               methods=method_kinds(cls), class_methods=static_methods(cls),
               env=as_env(env) if env is not None else None)
    return m.to(system, env=env, name=name) if system is not None else m
