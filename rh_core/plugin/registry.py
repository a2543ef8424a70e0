"""Building the plugin manager and reading what plugins registered.

Nothing is loaded at import time: :func:`get_plugin_manager` builds a fresh manager, and
:func:`registry` keeps one per process, built on first use. The core's own plugins
(:data:`DEFAULT_PLUGINS`, all in ``rh_core/builtin/``) are imported by name when a manager is
built, like any installed plugin: this room imports nothing above it.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from importlib import metadata
from typing import Any

import attrs
import pluggy

from rh_core.errors import UnknownPluginItemError
from rh_core.plugin import hookspecs

ENTRY_POINT_GROUP = "rh"

#: Built-in plugins: the core's own providers, connections, installers, stores and backends.
DEFAULT_PLUGINS = (
    "rh_core.builtin.local",
    "rh_core.builtin.here",
    "rh_core.builtin.connections",
    "rh_core.builtin.installers",
    "rh_core.builtin.stores",
    "rh_core.builtin.keyring",
)


@attrs.define
class PluginInfo:
    """One registered plugin, as ``rh plugins`` shows it."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: list[str]
    builtin: bool
    #: What it registered, as "provider kubernetes", "connection k8s_portforward", ...
    registers: list[str] = attrs.field(factory=list)


def get_plugin_manager(autoload: bool | None = None) -> pluggy.PluginManager:
    """A new plugin manager with the hook specs, the built-in plugins and the ``rh`` entry points.

    Entry points are skipped when ``RH_DISABLE_PLUGIN_AUTOLOAD`` is set (or ``autoload=False``).
    A plugin that fails to import is skipped with a warning naming it and the error.
    """
    pm = pluggy.PluginManager("rh")
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    if autoload is None:
        autoload = not os.environ.get("RH_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        _load_entry_points(pm)
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        where = f"{dist.name} {dist.version}" if dist else ep.value
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # a broken plugin must not break rh
            warnings.warn(
                f"rh plugin {ep.name!r} ({where}) failed to load and was skipped: "
                f"{type(e).__name__}: {e}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        _DISTS[id(plugin)] = (dist.name, dist.version) if dist else (None, None)


_DISTS: dict[int, tuple[str | None, str | None]] = {}


class Registry:
    """What the installed plugins registered, by kind, read once from a plugin manager."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.providers = self._collect(pm.hook.rh_compute_providers, "compute provider")
        self.connection_types = self._collect(pm.hook.rh_connection_types, "connection type")
        self.installers = self._collect(pm.hook.rh_package_installers, "package installer")
        self.secret_backends = self._collect(pm.hook.rh_secret_backends, "secret backend")
        self.rns_stores = self._collect(pm.hook.rh_rns_stores, "rns store", key="prefix")
        self._pm_cli = pm.hook.rh_cli_commands

    @functools.cached_property
    def cli_commands(self) -> dict[str, Any]:
        """The command groups plugins add to ``rh`` (typer apps), by name; read when the
        command line starts."""
        found: dict[str, Any] = {}

        def register(app: Any) -> None:
            name = getattr(getattr(app, "info", None), "name", None)
            if not isinstance(name, str) or not name:
                warnings.warn(f"a plugin registered a command group without a name: {app!r}",
                              stacklevel=2)
            elif name in found:
                warnings.warn(f"command group {name!r} registered twice; keeping the first",
                              stacklevel=2)
            else:
                found[name] = app

        self._pm_cli(register=register)
        return found

    @staticmethod
    def _collect(hook: Any, kind: str, key: str = "name") -> dict[str, Any]:
        found: dict[str, Any] = {}

        def register(item: Any) -> None:
            name = getattr(item, key)
            if name in found:
                warnings.warn(f"{kind} {name!r} registered twice; keeping the first", stacklevel=2)
                return
            found[name] = item

        hook(register=register)
        return found

    def _get(self, table: dict[str, Any], kind: str, name: str) -> Any:
        try:
            return table[name]
        except KeyError:
            raise UnknownPluginItemError(kind, name, list(table)) from None

    def provider(self, name: str):
        return self._get(self.providers, "compute provider", name)

    def connection_type(self, name: str):
        return self._get(self.connection_types, "connection type", name)

    def installer(self, name: str):
        return self._get(self.installers, "package installer", name)

    def rns_store(self, prefix: str):
        return self._get(self.rns_stores, "rns store", prefix)

    def secret_backend(self, name: str):
        return self._get(self.secret_backends, "secret backend", name)

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            dist, version = _DISTS.get(id(plugin), (None, None))
            builtin = name in DEFAULT_PLUGINS
            if builtin:
                dist, version = "rh-core", metadata.version("rh-core")
            module = getattr(plugin, "__name__", type(plugin).__name__)
            infos.append(PluginInfo(name, module, dist, version, hooks, builtin,
                                    self._registered_by(module)))
        return infos

    def _registered_by(self, module: str) -> list[str]:
        """What the plugin module ``module`` registered: the items whose class lives in it or
        in a module under it (a plugin registers its own classes)."""
        out = []
        for kind, table in (("provider", self.providers), ("connection", self.connection_types),
                            ("installer", self.installers), ("secrets", self.secret_backends),
                            ("store", self.rns_stores)):
            for name, item in table.items():
                owner = getattr(item, "__module__", None) or type(item).__module__
                if owner == module or owner.startswith(module + "."):
                    out.append(f"{kind} {name}")
        return out


@functools.cache
def registry() -> Registry:
    """This process's registry, built on first use."""
    return Registry(get_plugin_manager())


def reset() -> None:
    """Forget the registry (tests, or after installing a plugin in-process). What was built from
    it (the config converter) is keyed on the registry, so it is rebuilt with the next one."""
    registry.cache_clear()
