"""Finding user code: a pointer (module path + qualname + code root) or, for ``__main__`` and
notebooks, the object itself pickled with cloudpickle."""

from __future__ import annotations

import base64
import inspect
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from rh_core.errors import ConfigError


def code_ref(obj: Any) -> tuple[dict | None, str | None]:
    """``(pointer, None)`` for importable code, ``(None, base64 cloudpickle)`` otherwise."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module_name or not qualname:
        raise ConfigError(f"{obj!r} is not a function or class defined in Python code")
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module_name == "__main__" or "<locals>" in qualname or not file:
        try:
            return None, base64.b64encode(cloudpickle.dumps(obj, protocol=5)).decode()
        except Exception as e:
            raise ConfigError(f"{qualname} could not be pickled to send it: {e}") from None
    path = Path(file).resolve()
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parents[depth]
    return {"module": module_name, "qualname": qualname, "root": str(root)}, None


def call_kind(fn: Any) -> str:
    """How a callable returns: ``sync``, ``gen``, ``async`` or ``asyncgen``."""
    if inspect.isasyncgenfunction(fn):
        return "asyncgen"
    if inspect.iscoroutinefunction(fn):
        return "async"
    if inspect.isgeneratorfunction(fn):
        return "gen"
    return "sync"


def method_kinds(cls: type) -> dict[str, str]:
    """Public methods of a class and how each returns; attributes are not listed."""
    out = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if isinstance(raw, property) or not callable(member):
            continue
        out[name] = call_kind(raw)
    return out


def static_methods(cls: type) -> list[str]:
    """Public classmethods and staticmethods of a class: callable on the served class itself."""
    return sorted(
        name for name in dir(cls)
        if not name.startswith("_")
        and isinstance(inspect.getattr_static(cls, name), (staticmethod, classmethod)))
