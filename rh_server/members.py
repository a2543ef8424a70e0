"""What of a served instance (or class) a call may reach: its public methods and attributes, its
private attributes (not private methods, never dunders), and two accessors every served object
answers, ``rh.getattr`` and ``rh.setattr``, whose names no Python method can have."""

from __future__ import annotations

from rh_server.protocol import NotFound


def _kind(exc: BaseException, kind: str) -> BaseException:
    exc._rh_kind = kind
    return exc


def member(name: str, obj, attr: str):
    """A public member of a served instance, or a private (``_x``) attribute that is not
    callable; never a dunder, never a private method."""
    private = attr.startswith("_")
    if attr.startswith("__") or not hasattr(obj, attr) or (
            private and callable(getattr(obj, attr))):
        what = "attribute" if private else "method or attribute"
        raise _kind(NotFound(f"{name!r} ({type(obj).__name__}) has no public {what} {attr!r}"),
                    "not_found")
    return getattr(obj, attr)


def _getattr(name: str, obj):
    def fetch(attr: str):
        value = member(name, obj, attr)
        if callable(value):
            raise TypeError(f"{name}.{attr} is a method: call it instead of fetching it")
        return value
    return fetch


def _setattr(name: str, obj):
    def assign(attr: str, value) -> None:
        if not isinstance(attr, str) or not attr.isidentifier() or attr.startswith("__"):
            raise ValueError(f"cannot set {attr!r} on {name!r}: give an attribute name")
        setattr(obj, attr, value)
    return assign


#: Methods every served instance (and class) answers besides its own, under names no Python
#: method can have: reading and setting an attribute by name.
ACCESSORS = {"rh.getattr": _getattr, "rh.setattr": _setattr}
