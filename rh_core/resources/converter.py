"""The one cattrs converter for resource configs, built after plugins are loaded.

Configs are plain JSON tagged with ``resource_type`` (and ``subtype`` for clusters, the provider
name), so a plugin's cluster class structures by name. Unknown keys are refused with a message
that lists the known ones.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from rh_core.errors import ConfigError
from rh_core.plugin.registry import Registry, registry

#: Resource classes other than clusters, by ``resource_type``; filled by
#: ``Resource.__init_subclass__`` (so this module imports no resource class).
KINDS: dict[str, type] = {}


def register_kind(cls: type) -> None:
    """Make configs tagged ``resource_type = cls.resource_type`` structure into ``cls``.
    Clusters are not registered here: their classes come from the compute providers."""
    KINDS[cls.resource_type] = cls


def resource_classes(reg: Registry | None = None) -> dict[tuple[str, str | None], type]:
    """Every resource class by ``(resource_type, subtype)``, including plugins' cluster classes."""
    _core_kinds()
    classes: dict[tuple[str, str | None], type] = {(k, None): c for k, c in KINDS.items()}
    for name, provider in (reg or registry()).providers.items():
        classes[("cluster", name)] = provider.cluster_class
    return classes


#: The modules defining the core's resource kinds, by name: ``import rh_core`` loads each only
#: when first used, so a config may be read before its class was ever imported. Imported by
#: name when the converter is first built (as entry points name plugins' modules).
CORE_KIND_MODULES = (
    "rh_core.resources.function", "rh_core.resources.module", "rh_core.resources.env",
    "rh_core.resources.secret", "rh_core.resources.data.blob", "rh_core.resources.data.folder",
    "rh_core.resources.data.table",
)


@functools.cache
def _core_kinds() -> None:
    for module in CORE_KIND_MODULES:
        importlib.import_module(module)  # each class registers itself (register_kind)


def make_converter(reg: Registry | None = None) -> cattrs.Converter:
    """A converter that knows every resource class, including those of installed plugins."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    classes = set(resource_classes(reg).values())

    def omitted(cls: type) -> dict:
        # Fields marked ``metadata={"config": False}`` (where it was saved) are not the config.
        return {f.name: override(omit=True) for f in attrs.fields(cls)
                if not f.metadata.get("config", True)}

    # Factories, not hooks: a hook is made when first needed, so a resource inside another
    # (a function's env) gets its own hook, whatever the order of the classes.
    def ours(t) -> bool:
        return isinstance(t, type) and t in classes

    conv.register_unstructure_hook_factory(
        ours, lambda cls: make_dict_unstructure_fn(cls, conv, **omitted(cls)))
    conv.register_structure_hook_factory(
        ours, lambda cls: make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True,
                                                 **omitted(cls)))
    return conv


@functools.lru_cache(maxsize=2)
def _converter_for(reg: Registry, kinds: int) -> cattrs.Converter:
    return make_converter(reg)


def get_converter() -> cattrs.Converter:
    """The converter of this process's registry (rebuilt when the registry is reset or a new
    resource kind is defined)."""
    _core_kinds()
    return _converter_for(registry(), len(KINDS))


def unstructure(resource: Any) -> dict:
    """A resource's config: plain JSON, tagged with its resource type and subtype."""
    cls = type(resource)
    data = get_converter().unstructure(resource, unstructure_as=cls)
    out = {"resource_type": cls.resource_type}
    subtype = getattr(cls, "subtype", None)
    if subtype:
        out["subtype"] = subtype
    out.update(data)
    return out


def structure(config: dict) -> Any:
    """Build the resource a config describes; a bad key or value raises :class:`ConfigError`."""
    if not isinstance(config, dict) or "resource_type" not in config:
        raise ConfigError(f"not a resource config (no 'resource_type'): {config!r:.200}")
    data = dict(config)
    rtype, subtype = data.pop("resource_type"), data.pop("subtype", None)
    conv = get_converter()
    cls = resource_classes().get((rtype, subtype))
    if cls is None:
        if rtype == "cluster":
            registry().provider(str(subtype))  # raises, listing installed providers
        raise ConfigError(f"unknown resource type {rtype!r} (subtype {subtype!r})")
    try:
        return conv.structure(data, cls)
    except cattrs.BaseValidationError as e:
        raise ConfigError(_explain(e, cls)) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad {rtype} config: {e}") from None


def _explain(err: cattrs.BaseValidationError, cls: type) -> str:
    known = sorted(f.alias or f.name for f in attrs.fields(cls))
    lines = []
    for exc in err.exceptions:
        if isinstance(exc, cattrs.ForbiddenExtraKeysError):
            lines.append(f"unknown key(s) {sorted(exc.extra_fields)}; known keys: {known}")
        else:
            notes = getattr(exc, "__notes__", [])
            lines.append(f"{'; '.join(notes) or type(exc).__name__}: {exc}")
    return f"bad {cls.resource_type} config: " + " | ".join(lines)
