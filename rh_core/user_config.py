"""The user's defaults: ``$RH_HOME/config.yaml`` (``~/.rh/config.yaml``), overridden by
``RH_<KEY>`` environment variables.

One attrs record, :class:`UserConfig`, holds every key; the file is structured into it by cattrs
with the same rule as resource configs (unknown keys refused), and every value is checked for
its type. The file never holds a secret: keys and values that look like credentials are refused
with a word on where they belong. It sits in the lowest room so that every room can read it
(``names/`` reads ``default_folder``, ``resources/`` the secret backend, plugins their defaults).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs

from rh_core.errors import ConfigError
from rh_core.paths import rh_home, write_private

FILE_NAME = "config.yaml"


def _autostop(inst, attr, value):
    if value < -1:
        raise ConfigError(f"default_autostop is minutes of idleness (-1: never), got {value}")


def _url(inst, attr, value):
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{attr.name} must be an http(s) URL, got {value!r}")


def _folder(inst, attr, value):
    parts = [p for p in (value[1:] if value[:1] in "~@^" else value).split("/") if p]
    if not value or not all(re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", p) for p in parts):
        raise ConfigError(f"default_folder must be a folder of names such as '~' or '~/proj', "
                          f"got {value!r}")


def _word(inst, attr, value):
    if value is not None and not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$", value):
        raise ConfigError(f"{attr.name} must be a name (letters, digits, '_', '-', '.', '/'), "
                          f"got {value!r}")


@attrs.define(kw_only=True)
class UserConfig:
    """Every key of ``config.yaml`` with its default. docs/configs.md has the table of who reads
    each one."""

    #: The folder bare names are resolved in when rh starts (``rh.set_folder`` changes it).
    default_folder: str = attrs.field(default="~", validator=_folder)
    #: The compute provider of a new cluster whose provider cannot be told from its fields.
    default_provider: str = attrs.field(default="local", validator=_word)
    #: The region cloud providers use when a cluster names none.
    default_region: str | None = attrs.field(default=None, validator=_word)
    #: Minutes of idleness before a cloud cluster stops itself; -1: never.
    default_autostop: int = attrs.field(default=-1, validator=_autostop)
    #: Whether cloud providers ask for spot (preemptible) instances by default.
    use_spot: bool = False
    #: The backend new secrets' values go to (``keyring``, or ``vault`` with rh-vault).
    secret_backend: str = attrs.field(default="keyring", validator=_word)
    #: The shared store's address (the ``@`` names), for the rh-den plugin.
    den_url: str | None = attrs.field(default=None, validator=_url)
    #: Vault, for rh-vault: its address when ``VAULT_ADDR`` is not set.
    vault_addr: str | None = attrs.field(default=None, validator=_url)
    #: Vault namespace when ``VAULT_NAMESPACE`` is not set.
    vault_namespace: str | None = attrs.field(default=None, validator=_word)
    #: Mount point of the KV version 2 secrets engine rh-vault uses.
    vault_mount: str = attrs.field(default="secret", validator=_word)
    #: Folder under the mount that holds rh's secrets (``<mount>/<prefix>/<name>``).
    vault_path_prefix: str = attrs.field(default="rh", validator=_word)
    #: AppRole role id (not a secret; its secret id is, and comes from ``VAULT_SECRET_ID``).
    vault_role_id: str | None = attrs.field(default=None, validator=_word)
    #: Mount point of the AppRole auth method.
    vault_approle_mount: str = attrs.field(default="approle", validator=_word)


attrs.resolve_types(UserConfig)  # the annotations are text (postponed): make them types
KEYS = tuple(f.name for f in attrs.fields(UserConfig))
_TYPES = {f.name: f.type for f in attrs.fields(UserConfig)}
_DEFAULTS = {f.name: f.default for f in attrs.fields(UserConfig)}

#: Key names and values that are credentials, which the file never holds.
_SECRET_KEY = re.compile(r"token|secret|passw|api_?key|credential|private_?key|access_?key",
                         re.I)
_SECRET_VALUE = re.compile(r"^(sk-|ghp_|gho_|github_pat_|hf_|hvs\.|s\.[A-Za-z0-9]{20}|rho_|rht_|"
                           r"rhw_|xox[abp]-|AKIA[0-9A-Z]{12}|ASIA[0-9A-Z]{12}|eyJ)|-----BEGIN")
WHERE_SECRETS_GO = ("keep it as a secret instead: rh.secret(name=..., values={...}).save() or "
                    "`rh secret set NAME KEY=VALUE` (its value goes to the secret backend), or in "
                    "an environment variable (VAULT_TOKEN, VAULT_SECRET_ID)")


def config_file() -> Path:
    """Where the file is: ``$RH_HOME/config.yaml`` (``~/.rh/config.yaml``)."""
    return rh_home() / FILE_NAME


def _unknown(key: str) -> ConfigError:
    return ConfigError(f"{config_file()}: unknown key {key!r}; known keys: {', '.join(KEYS)}")


def _kind(key: str) -> type:
    t = _TYPES[key]
    if get_origin(t) is Union or type(t).__name__ == "UnionType":
        return next(a for a in get_args(t) if a is not type(None))
    return t


def _optional(key: str) -> bool:
    t = _TYPES[key]
    return type(None) in get_args(t)


def _type_error(key: str, value: Any) -> str:
    kind = _kind(key)
    what = {bool: "true or false", int: "a whole number", str: "text"}[kind]
    shown = "null" if value is None else f"{value!r:.60} ({type(value).__name__})"
    hint = " (quote it in YAML: '~')" if key == "default_folder" and value is None else ""
    return f"{key} must be {what}{' or null' if _optional(key) else ''}, got {shown}{hint}"


def _check_type(key: str, value: Any) -> str | None:
    """Why ``value`` does not fit ``key``, or None. Strict: ``"true"`` is not a bool, ``True``
    not an int."""
    if value is None:
        return None if _optional(key) else _type_error(key, value)
    kind = _kind(key)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    return None if ok else _type_error(key, value)


def _refuse_secret(key: str, value: Any, where: str) -> None:
    if _SECRET_KEY.search(key) and key not in KEYS:
        raise ConfigError(f"{where}: {key!r} looks like a credential, and {FILE_NAME} never holds "
                          f"one; {WHERE_SECRETS_GO}")
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        raise ConfigError(f"{where}: the value given for {key!r} looks like a token or a key, and "
                          f"{FILE_NAME} never holds one; {WHERE_SECRETS_GO}")


@functools.cache
def _converter() -> cattrs.Converter:
    # Unknown keys are refused, as in resource configs; types are checked before structuring
    # (cattrs alone would turn "yes" into True).
    return cattrs.Converter(forbid_extra_keys=True)


def _structure(values: dict, where: str) -> UserConfig:
    known = ", ".join(KEYS)
    for key, value in values.items():
        if not isinstance(key, str) or key not in KEYS:
            _refuse_secret(str(key), None, where)
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {known}")
        _refuse_secret(key, value, where)
        problem = _check_type(key, value)
        if problem:
            raise ConfigError(f"{where}: {problem}; known keys: {known}")
    try:
        return _converter().structure(values, UserConfig)
    except ConfigError as e:  # a validator's message
        raise ConfigError(f"{where}: {e}") from None
    except cattrs.BaseValidationError as e:
        raise ConfigError(f"{where}: {e}; known keys: {known}") from None


def parse_text(key: str, text: str) -> Any:
    """A value for ``key`` from text (an ``RH_<KEY>`` variable, ``rh config set``): ``true`` or
    ``false`` for flags, digits for numbers, ``null`` (or nothing) for no value."""
    if key not in KEYS:
        raise _unknown(key)
    kind = _kind(key)
    if text.strip().lower() in ("", "null", "none") and _optional(key):
        return None
    if kind is bool:
        low = text.strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ConfigError(_type_error(key, text))
    if kind is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(_type_error(key, text)) from None
    return text


def _read_file(path: Path) -> dict:
    # PyYAML costs milliseconds to import; only reading or writing the file needs it.
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix it, or delete it to start from "
                          f"the defaults") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of keys to values (key: value lines); "
                          f"known keys: {', '.join(KEYS)}")
    return data


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: tuple, env: tuple) -> tuple[dict, dict, UserConfig]:
    file_values = _read_file(Path(path))
    _structure(file_values, path)
    overrides = {}
    for key, text in env:
        try:
            overrides[key] = parse_text(key, text)
        except ConfigError as e:
            raise ConfigError(f"environment variable RH_{key.upper()}: {e}") from None
        _refuse_secret(key, overrides[key], f"RH_{key.upper()}")
    return file_values, overrides, _structure({**file_values, **overrides}, path)


#: ``RH_<KEY>`` of each key, made once (every read of a value looks them all up).
_ENV_NAMES = tuple((k, f"RH_{k.upper()}") for k in KEYS)


def _state() -> tuple[dict, dict, UserConfig]:
    """(values in the file, values from ``RH_<KEY>`` variables, both over the defaults), read
    again when the file or a variable changes."""
    path = config_file()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except FileNotFoundError:
        stamp = ()
    get = os.environ.get
    env = tuple((k, v) for k, v in ((k, get(n)) for k, n in _ENV_NAMES) if v is not None)
    return _load(str(path), stamp, env)


def load() -> UserConfig:
    """The defaults in force: the file's values over the built-in defaults, and ``RH_<KEY>``
    variables over both. A bad file or variable raises :class:`ConfigError` naming it."""
    return attrs.evolve(_state()[2])  # a copy: the one kept is shared by every read


def value(key: str) -> Any:
    """One key's value in force (see :func:`load`)."""
    if key not in KEYS:
        raise _unknown(key)
    return getattr(_state()[2], key)


def sources() -> dict[str, str]:
    """Where each key's value comes from: ``default``, ``file`` or ``env RH_<KEY>``."""
    file_values, overrides, _ = _state()
    return {k: f"env RH_{k.upper()}" if k in overrides else "file" if k in file_values
            else "default" for k in KEYS}


def file_values() -> dict:
    """The keys set in the file (checked), without defaults or variables."""
    return dict(_state()[0])


def write(values: dict) -> None:
    """Replace the file with ``values`` (checked first; written atomically, mode 0600)."""
    # PyYAML: see _read_file.
    import yaml

    path = config_file()
    _structure(values, str(path))
    text = yaml.safe_dump({k: values[k] for k in KEYS if k in values}, default_flow_style=False,
                          sort_keys=False)
    write_private(path, text)


def set_value(key: str, new: Any) -> None:
    """Set ``key`` in the file to ``new`` (typed: a bool for ``use_spot``, ...)."""
    _refuse_secret(key, new, str(config_file()))
    if key not in KEYS:
        raise _unknown(key)
    write({**file_values(), key: new})


def unset_value(key: str) -> bool:
    """Remove ``key`` from the file (its default, or its variable, is in force again); whether
    it was there."""
    if key not in KEYS:
        raise _unknown(key)
    values = file_values()
    if key not in values:
        return False
    del values[key]
    write(values)
    return True


def defaults() -> dict:
    """The built-in default of every key."""
    return dict(_DEFAULTS)
