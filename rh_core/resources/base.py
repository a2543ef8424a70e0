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

    #: Full name (``~/a/b``) once saved or given; None for an anonymous resource.
    name: str | None = None

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
        """Save the config under ``name`` (or the resource's own name) in its store."""
        name = name or self.name
        if not name:
            raise ConfigError(f"give the {self.resource_type} a name to save it: .save('~/my-name')")
        self.name = name
        rns.save_config(name, self.config())
        return self

    def delete_configs(self) -> bool:
        """Delete this resource's saved config."""
        return bool(self.name) and rns.delete(self.name)

    @property
    def short_name(self) -> str | None:
        """The last part of the name (what the server knows it by)."""
        return self.name.rsplit("/", 1)[-1].lstrip("~^@") if self.name else None


def load(name: str) -> Resource:
    """The resource saved under ``name``."""
    return converter.structure(rns.load_config(name))
