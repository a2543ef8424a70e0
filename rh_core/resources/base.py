"""The base of every user-facing resource: a config that round-trips, a name, save and load."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.names import resolve as rns
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
        try:
            self._rns_address = rns.save_config(target, self.config())
        except BaseException:
            self.name = given
            raise
        return self

    def delete_configs(self) -> bool:
        """Delete this resource's saved config (at :attr:`rns_address`)."""
        address = self.rns_address
        return bool(address) and rns.delete(address)

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


def load(name: str) -> Resource:
    """The resource saved under ``name``."""
    address = rns.full_name(name)
    resource = converter.structure(rns.load_config(name))
    resource._rns_address = address
    return resource
