"""Rebuilding the exception an error answer stands for: the original exception when it was
pickled, else its type imported by name, else :class:`~rh_core.errors.RemoteException`; rh's
own kinds map to :mod:`rh_core.errors` classes; the remote traceback is added as a note."""

from __future__ import annotations

import base64
import builtins
import importlib
import pickle
from typing import Any

from rh_core import errors

_KINDS = {
    "not_found": errors.RemoteFunctionNotFound,
    "clash": errors.NameClashError,
    "worker_crashed": errors.WorkerCrashedError,
    "run_not_found": errors.RunNotFoundError,
    "auth": errors.AuthError,
    "bad_request": errors.ServerError,
    "define": errors.ServerError,
    "run_failed": errors.ServerError,
    "cancelled": errors.RunCancelledError,
    "too_large": errors.ServerError,
    "rate_limited": errors.ServerError,
}


def rebuild_error(payload: dict, status: int, cluster: str) -> BaseException:
    """The exception a failed request stands for, with the remote traceback attached."""
    err = payload.get("error", payload) if isinstance(payload, dict) else {}
    kind = err.get("kind", "user")
    message = err.get("message", "unknown error")
    tb = err.get("traceback") or ""
    if kind == "serialization":
        exc: BaseException = errors.SerializationError(message)
    elif kind == "install":
        exc = errors.PackageInstallError(message)
    elif kind in _KINDS:
        exc = _KINDS[kind](message, status)
    elif kind == "user":
        exc = _user_exception(err)
    else:
        exc = errors.ServerError(f"{message} (HTTP {status})", status)
    if tb:
        exc.add_note(f"\n--- remote traceback (cluster {cluster!r}) ---\n{tb.rstrip()}")
    return exc


def _user_exception(err: dict) -> BaseException:
    if err.get("exc_pickle"):
        try:
            exc = pickle.loads(base64.b64decode(err["exc_pickle"]))
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    type_name, message = err.get("type", "Exception"), err.get("message", "")
    cls = _import_type(type_name)
    if cls is not None:
        try:
            return cls(message)
        except Exception:
            pass
    return errors.RemoteException(type_name, message, err.get("traceback", ""))


def _import_type(path: str) -> type | None:
    if "." not in path:
        t = getattr(builtins, path, None)
        return t if isinstance(t, type) and issubclass(t, BaseException) else None
    module, _, qual = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None
