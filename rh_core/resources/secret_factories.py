"""What users call to make and find secrets: ``rh.secret``, ``rh.secrets``,
``rh.provider_secret``, and Runhouse's ``rh.Secrets`` spellings on top of them."""

from __future__ import annotations

import warnings
from pathlib import Path

from rh_core.errors import ConfigError, ResourceNotFoundError, SecretNotFoundError
from rh_core.names import resolve as rns
from rh_core.names import secrets as backends
from rh_core.resources.base import Resource
from rh_core.resources.provider_secrets import check_values, read_local, ssh_locate
from rh_core.resources.provider_secrets import providers as known_providers
from rh_core.resources.secret import FOLDER, Secret, check_name


def secret(name: str | None = None, values: dict[str, str] | None = None,
           provider: str | None = None, backend: str | None = None,
           env_vars: dict[str, str] | None = None) -> Secret:
    """A secret: ``rh.secret("openai")`` loads a saved one; ``rh.secret(name="openai",
    values={"api_key": ...})`` makes one of your own (``backend=`` picks where ``save()`` puts
    the values); ``provider=`` is :func:`provider_secret`."""
    if provider is not None:
        return provider_secret(provider, name=name, values=values, backend=backend,
                               env_vars=env_vars)
    if values is None:
        if name is None:
            raise ConfigError("rh.secret needs the name of a saved secret, or values: "
                              "rh.secret(name='openai', values={'api_key': ...})")
        return load_secret(name)
    return Secret(name=name, values=values, backend=backend, env_vars=dict(env_vars or {}))


def load_secret(name: str) -> Secret:
    """The saved secret ``name`` (or a full address such as ``@/secrets/openai``)."""
    full = name if name[:1] in "~@" and "/" in name else f"{FOLDER}/{check_name(name)}"
    try:
        loaded = Resource.from_config(rns.load_config(full))
    except ResourceNotFoundError:
        raise SecretNotFoundError(
            f"no secret saved as {name!r} (looked for {full}); saved secrets: "
            f"{secrets() or 'none'}. Make it with rh.secret(name={name!r}, values={{...}}).save(), "
            f"or rh.provider_secret(PROVIDER).save()") from None
    if not isinstance(loaded, Secret):
        raise ConfigError(f"{full!r} is a {loaded.resource_type}, not a secret")
    loaded._rns_address = full
    return loaded


def secrets(backend: str | None = None) -> list[str]:
    """Names of the saved secrets (their references, under ``~/secrets``); with ``backend``,
    the secrets that backend holds, where it can list them (Vault can, the keyring cannot)."""
    if backend is None:
        return sorted(n.rsplit("/", 1)[-1] for n in rns.list_names("~", "secrets"))
    names = backends.listed(backend)
    if names is None:
        raise ConfigError(f"the {backend} backend cannot list what it holds; rh.secrets() lists "
                          f"the saved secrets")
    return names


def provider_secret(provider: str, name: str | None = None, values: dict[str, str] | None = None,
                    key: str | None = None, path: str | None = None, backend: str | None = None,
                    env_vars: dict[str, str] | None = None) -> Secret:
    """A provider's credentials: read from this machine (its files and environment
    variables, or ``path``), or given as ``values``. ``key`` names an SSH key (``id_rsa``)."""
    p = known_providers().get(provider)
    if p is None:
        if values is None:
            raise ConfigError(
                f"unknown provider {provider!r}; known: {', '.join(sorted(known_providers()))}. "
                f"For other credentials give the values: rh.provider_secret({provider!r}, "
                f"values={{...}}), or rh.secret(name=..., values={{...}})")
        return Secret(name=name or provider, values=values, backend=backend,
                      env_vars=dict(env_vars or {}))
    locate = ssh_locate(key) if provider == "ssh" else p.locate
    if path is not None:
        def locate(environ):  # noqa: F811 - the file named by path=
            return Path(path).expanduser(), "path="
    target = p.default_path
    if provider == "ssh":
        target = f"~/.ssh/{key or locate({})[0].name}"
    if values is None:
        values, _ = read_local(p, locate)
    else:
        values = check_values(p, values)
    default_name = provider if provider != "ssh" else f"ssh-{target.rsplit('/', 1)[-1]}"
    return Secret(name=name or default_name, provider=provider, values=values, path=target,
                  backend=backend, env_vars=dict(env_vars or {}))


class Secrets:
    """Runhouse's older spellings of secrets, kept working: ``rh.Secrets.put(provider="aws")``,
    ``rh.Secrets.get(provider="snowflake")``, ``rh.Secrets.extract_and_upload()``,
    ``rh.Secrets.download_into_env(providers=[...])``."""

    @staticmethod
    def builtin_providers() -> list[str]:
        """The providers ``rh.provider_secret`` knows."""
        return sorted(known_providers())

    @staticmethod
    def put(provider: str, secret: dict[str, str] | None = None, name: str | None = None,
            overwrite: bool = True) -> Secret:
        """Save a provider's secret: read from this machine, or ``secret`` as its values
        (``provider="snowflake", secret={...}`` saves your own secret named ``snowflake``).
        Replaces a saved one of the same name, as Runhouse's did."""
        made = provider_secret(provider, name=name, values=secret)
        return made.save(overwrite=overwrite)

    @staticmethod
    def get(provider: str) -> dict[str, str]:
        """The values of the saved secret named ``provider``."""
        return load_secret(provider).values

    @staticmethod
    def delete(provider: str) -> bool:
        """Delete the saved secret named ``provider`` (values and reference)."""
        return load_secret(provider).delete()

    @staticmethod
    def extract_and_upload(providers: list[str] | None = None, interactive: bool = False
                           ) -> list[str]:
        """Save the credentials of every provider found on this machine (or of ``providers``),
        replacing saved ones; with ``interactive``, ask for each. Returns the names saved."""
        saved = []
        for name in providers or sorted(known_providers()):
            try:
                found = provider_secret(name)
            except SecretNotFoundError:
                continue
            except ConfigError as e:  # a malformed file: say so, go on with the others
                warnings.warn(f"{name} credentials not saved: {e}", RuntimeWarning, stacklevel=2)
                continue
            if interactive and not ask(f"Save your {name} credentials as the secret "
                                       f"{found.name!r}?"):
                continue
            saved.append(found.save(overwrite=True).name)
        return saved

    @staticmethod
    def download_into_env(providers: list[str] | None = None) -> list[str]:
        """Put saved secrets to use on this machine: each provider's files written where its
        tools look (``write()``), and its variables set in this process (``in_env()``).
        ``providers`` defaults to every saved provider secret. Returns their names."""
        names = providers or [n for n in secrets() if _is_provider_secret(n)]
        done = []
        for name in names:
            found = load_secret(name)
            if found.provider and known_providers()[found.provider].files is not None:
                found.write()
            found.in_env()
            done.append(name)
        return done


def _is_provider_secret(name: str) -> bool:
    try:
        return load_secret(name).provider is not None
    except (ConfigError, ResourceNotFoundError):
        return False


def ask(question: str) -> bool:
    """Ask a yes/no question on the terminal (no is the default)."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False
