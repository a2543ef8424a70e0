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


def code_ref(obj: Any, by_value: bool = False) -> tuple[dict | None, str | None]:
    """``(pointer, None)`` for importable code, ``(None, base64 cloudpickle)`` otherwise, or
    always with ``by_value`` (the code itself travels, as from a notebook)."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module_name or not qualname:
        raise ConfigError(f"{obj!r} is not a function or class defined in Python code")
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if by_value or module_name == "__main__" or "<locals>" in qualname or not file:
        try:
            return None, base64.b64encode(_pickled(obj, module if by_value else None)).decode()
        except Exception as e:
            raise ConfigError(f"{qualname} could not be pickled to send it: {e}") from None
    path = Path(file).resolve()
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parents[depth]
    return {"module": module_name, "qualname": qualname, "root": str(root)}, None


def _pickled(obj: Any, module) -> bytes:
    """cloudpickle of ``obj``, by value even when its module is importable: cloudpickle keeps
    only a reference to an importable module's objects unless the module is registered."""
    register = (module is not None and module.__name__ != "__main__"
                and module.__name__ not in cloudpickle.list_registry_pickle_by_value())
    if register:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(obj, protocol=5)
    finally:
        if register:
            cloudpickle.unregister_pickle_by_value(module)


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
