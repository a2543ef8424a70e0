"""Loading user code from a define spec, and reloading modules whose files changed.

Used by env workers, and by Ray tasks on the other nodes of a cluster when a map is spread over
Ray (:mod:`rh_server.ray_map`).
"""

from __future__ import annotations

import base64
import importlib
import os
import sys

import cloudpickle


class CodeLoader:
    """Imports what a spec points at (``pointer``: code root, module, qualname) or unpickles it
    (``code``), reloading modules of the code root whose file changed since they were imported,
    so a redeploy of changed code takes effect without a new process."""

    def __init__(self):
        self._mtimes: dict[str, int] = {}

    def load(self, spec: dict, root_map=None):
        if spec.get("code") is not None:
            return cloudpickle.loads(base64.b64decode(spec["code"]))
        ptr = spec["pointer"]
        root = ptr.get("root")
        if root and root_map is not None:
            root = root_map(root)
        if root and root not in sys.path:
            sys.path.insert(0, root)
        self._reload_changed(root)
        module = importlib.import_module(ptr["module"])
        obj = module
        for part in ptr["qualname"].split("."):
            obj = getattr(obj, part)
        self._remember(module)
        return obj

    def _remember(self, module) -> None:
        f = getattr(module, "__file__", None)
        if f:
            try:
                self._mtimes[module.__name__] = os.stat(f).st_mtime_ns
            except OSError:
                pass

    def _reload_changed(self, root: str | None) -> None:
        """Reload modules from the code root whose file changed since they were imported."""
        if not root:
            return
        for modname, mtime in list(self._mtimes.items()):
            mod = sys.modules.get(modname)
            f = getattr(mod, "__file__", None)
            if not f or not f.startswith(root):
                continue
            try:
                now = os.stat(f).st_mtime_ns
            except OSError:
                continue
            if now != mtime:
                importlib.invalidate_caches()
                importlib.reload(mod)
                self._mtimes[modname] = now
        for mod in list(sys.modules.values()):
            f = getattr(mod, "__file__", None)
            if f and f.startswith(root) and mod.__name__ not in self._mtimes:
                self._remember(mod)
