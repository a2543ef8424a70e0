"""The base of every user-facing resource: a config that round-trips, a name, save and load."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.names import resolve as rns
from rh_core.names import shared
from rh_core.resources import converter


@attrs.define(kw_only=True, slots=False)
class Resource:
    """An attrs record with a JSON config. Runtime state lives outside the attrs fields."""

    resource_type: ClassVar[str] = "resource"

    #: The name as given (``"b"`` or ``"~/a/b"``); its last part is what the server knows it by.
    #: None for an anonymous resource. The full name is :attr:`rns_address`.
    name: str | None = None
    #: The full name it was saved or loaded under (see :attr:`rns_address`); kept out of the
    #: config, since where a config is kept is its name.
    _rns_address: str | None = attrs.field(default=None, repr=False, eq=False,
                                           metadata={"config": False})
    #: The version it was saved or loaded at, in a store that keeps versions (``@``): the
    #: next save starts from it, so a newer version saved by someone else is not overwritten.
    _rns_version: int | None = attrs.field(default=None, repr=False, eq=False,
                                           metadata={"config": False})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Every kind of resource but clusters (whose classes come from providers) is known to
        # the converter by its resource_type as soon as its class exists.
        if cls.resource_type not in ("resource", "cluster") and "resource_type" in cls.__dict__:
            converter.register_kind(cls)

    def config(self) -> dict[str, Any]:
        """This resource as plain JSON (what ``save()`` writes)."""
        return converter.unstructure(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Resource:
        """Rebuild a resource from :meth:`config` output."""
        return converter.structure(config)

    def save(self, name: str | None = None) -> Resource:
        """Save the config under ``name`` (or where it was saved before, or its own name) in its
        store. A name without a prefix is taken in the current folder, now: the full name is
        then fixed in :attr:`rns_address`."""
        target = name or self.rns_address
        if not target:
            raise ConfigError(f"give the {self.resource_type} a name to save it: .save('~/my-name')")
        given = self.name
        if name:
            self.name = name  # the config holds the name it is saved under
        address = rns.full_name(target)
        base = self._rns_version if address == self._rns_address else None
        try:
            self._rns_address, version = rns.save_versioned(target, self.config(), base)
        except BaseException:
            self.name = given
            raise
        self._rns_version = version
        return self

    def delete_configs(self) -> bool:
        """Delete this resource's saved config (at :attr:`rns_address`; in ``@``, with its
        versions and shares)."""
        address = self.rns_address
        deleted = bool(address) and rns.delete(address)
        self._rns_version = None
        return deleted

    def _saved_address(self) -> str:
        address = self.rns_address
        if not address:
            raise ConfigError(f"save the {self.resource_type} first: .save('@/you/name')")
        return address

    def share(self, users: list[str] | str | None = None, access_level: str = "read",
              visibility: str | None = None, *, access_type: str | None = None) -> dict:
        """Share the saved resource (``@/...``) with users or groups (names or email
        addresses) at ``access_level`` ``read`` (load and call) or ``write`` (also save and
        share); ``visibility``: ``private``, ``unlisted`` (anyone with the exact name) or
        ``public``. ``access_type`` is another name for ``access_level``."""
        return shared.share(self._saved_address(), users or [], access_type or access_level,
                            visibility)

    def revoke(self, users: list[str] | str) -> dict:
        """Take back what :meth:`share` gave these users or groups."""
        return shared.revoke(self._saved_address(), users)

    def history(self) -> list[dict]:
        """Its saved versions, newest first: ``[{"version", "timestamp", "author"}, ...]``."""
        return shared.history(self._saved_address())

    @property
    def rns_address(self) -> str | None:
        """The full name (``~/proj/boomer``): the one it was saved or loaded under, fixed then,
        whatever the current folder becomes; for a resource not saved yet, its name in the
        current folder. None without a name."""
        saved = self._rns_address
        # A copy made under another name (a module's instance, a renamed .to()) is not what
        # was saved there.
        if saved and saved.rsplit("/", 1)[-1].lstrip("~^@") == self.short_name:
            return saved
        return rns.full_name(self.name) if self.name else None

    @property
    def short_name(self) -> str | None:
        """The last part of the name (what the server knows it by)."""
        return self.name.rsplit("/", 1)[-1].lstrip("~^@") if self.name else None


def load(name: str, version: int | None = None) -> Resource:
    """The resource saved under ``name`` (at ``version``, in a store that keeps versions)."""
    address = rns.full_name(name)
    config, found = rns.load_versioned(name, version)
    resource = converter.structure(config)
    resource._rns_address = address
    # An old version, saved again, becomes the next version (a roll back), not a conflict.
    resource._rns_version = found if version is None else None
    return resource
