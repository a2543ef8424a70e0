"""Providers' credentials: where each tool keeps them on a machine, how to read them, and the
files and environment variables that carry them to another one. One row of :data:`PROVIDERS`
per provider (:func:`providers`); ``rh.provider_secret(name)`` reads a row's files and
variables.

Error messages name the files and variables looked at, never a value: a malformed file is
reported by its line number, not its text.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Callable

import attrs

from rh_core.errors import ConfigError, SecretNotFoundError


@attrs.frozen
class Provider:
    """How one provider's credentials are found and placed."""

    name: str
    #: Keys a secret of this provider must have, and those it may have.
    keys: tuple[str, ...]
    optional: tuple[str, ...] = ()
    #: Environment variable -> key: read here (over the file's values), set by ``in_env()`` and
    #: by ``.to(cluster, env=...)``.
    env_vars: dict[str, str] = attrs.field(factory=dict)
    #: Environment variables that tools read as the path of the provider's file.
    path_vars: tuple[str, ...] = ()
    #: The file tools look for by default (``~/...``); None for providers of variables only.
    default_path: str | None = None
    #: The file on this machine: ``locate(environ)`` -> (path, how it was chosen).
    locate: Callable[[dict], tuple[Path, str]] | None = None
    #: Values from the file's text (ConfigError when malformed).
    parse: Callable[[str, Path], dict[str, str]] | None = None
    #: The files that hold ``values`` at ``path``: ``[{"path", "content"} or {"path", "ini"}]``.
    files: Callable[[dict[str, str], str], list[dict]] | None = None
    #: Files next to the main one, read when present: suffix -> key (``.pub`` of an SSH key).
    siblings: dict[str, str] = attrs.field(factory=dict)
    #: Any key is allowed (a JSON key file's fields), not only ``keys`` and ``optional``.
    open_keys: bool = False
    #: What to run to make the credentials.
    hint: str = ""


def _home_path(default: str, env_var: str | None = None, file_in_dir: str | None = None):
    """A ``locate``: ``$env_var`` (a file, or a folder holding ``file_in_dir``), else ``default``."""
    def locate(environ: dict) -> tuple[Path, str]:
        given = environ.get(env_var) if env_var else None
        if given:
            given = given.split(os.pathsep)[0]
            path = Path(given).expanduser()
            return (path / file_in_dir if file_in_dir else path), f"${env_var}"
        return Path(default.replace("~", str(Path.home()), 1)), "the default place"
    return locate


def _hf_locate(environ: dict) -> tuple[Path, str]:
    if environ.get("HF_TOKEN_PATH"):
        return Path(environ["HF_TOKEN_PATH"]).expanduser(), "$HF_TOKEN_PATH"
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "token", "$HF_HOME"
    return Path.home() / ".cache" / "huggingface" / "token", "the default place"


def _ini(section_of: Callable[[dict], str], fields: dict[str, str]):
    """A ``parse`` of one INI section: file key -> secret key."""
    def parse(text: str, path: Path) -> dict[str, str]:
        # configparser: only INI providers need it (import time).
        import configparser

        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error as e:
            line = getattr(e, "lineno", None) or next(iter(getattr(e, "errors", [])), (None,))[0]
            raise ConfigError(f"{path} is not a valid INI credentials file (line {line}: not a "
                              f"[section] nor a key = value line; the line is not shown, it may "
                              f"hold a secret); fix it, or give the values directly") from None
        section = section_of(dict(os.environ))
        if not parser.has_section(section):
            return {}
        return {key: parser.get(section, field) for field, key in fields.items()
                if parser.has_option(section, field)}
    return parse


def _ini_files(section: str, fields: dict[str, str]):
    def files(values: dict[str, str], path: str) -> list[dict]:
        keys = {field: values[key] for field, key in fields.items() if values.get(key)}
        return [{"path": path, "ini": {section: keys}}]
    return files


def _json_parse(text: str, path: Path) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON (line {getattr(e, 'lineno', '?')}); fix it, "
                          f"or point GOOGLE_APPLICATION_CREDENTIALS at a key file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object (a credentials file)")
    nested = sorted(k for k, v in data.items() if not isinstance(v, str))
    if nested:
        raise ConfigError(f"{path}: the fields {nested} are not text; credentials of this kind "
                          f"(external accounts) are not supported yet: use a service account or "
                          f"user key file")
    return data


def _text_parse(key: str, marker: str | None = None):
    def parse(text: str, path: Path) -> dict[str, str]:
        value = text.strip() if marker is None else text
        if not value.strip():
            raise ConfigError(f"{path} is empty; write the credential into it, or give the "
                              f"values directly")
        if marker and marker not in text:
            raise ConfigError(f"{path} is not a private key (no '{marker}' line)")
        return {key: value}
    return parse


def _yaml_parse(pick: Callable[[dict, str, Path], dict[str, str]]):
    def parse(text: str, path: Path) -> dict[str, str]:
        # PyYAML: only providers whose files are YAML need it (import time).
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path} is not valid YAML{where} (the text there is not shown: "
                              f"it may hold a secret); fix it, or give the values directly") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must be a YAML mapping")
        return pick(data, text, path)
    return parse


def _kubeconfig(data: dict, text: str, path: Path) -> dict[str, str]:
    if not isinstance(data.get("clusters"), list) or not data.get("contexts"):
        raise ConfigError(f"{path} is not a kubeconfig (it needs 'clusters' and 'contexts')")
    return {"kubeconfig": text}


def _gh_hosts(data: dict, text: str, path: Path) -> dict[str, str]:
    host = data.get("github.com")
    token = host.get("oauth_token") if isinstance(host, dict) else None
    return {"oauth_token": token} if isinstance(token, str) and token else {}


def _whole(key: str, suffix_files: dict[str, str] | None = None):
    """``files``: the value of ``key`` as the file (and others keys as ``path + suffix``)."""
    def files(values: dict[str, str], path: str) -> list[dict]:
        out = [{"path": path, "content": values[key]}]
        for other, suffix in (suffix_files or {}).items():
            if values.get(other):
                out.append({"path": path + suffix, "content": values[other]})
        return out
    return files


def _gh_files(values: dict[str, str], path: str) -> list[dict]:
    # PyYAML: see _yaml_parse.
    import yaml

    hosts = {"github.com": {"oauth_token": values["oauth_token"], "git_protocol": "https"}}
    return [{"path": path, "content": yaml.safe_dump(hosts, default_flow_style=False)}]


def _api_key(name: str, var: str, hint: str) -> Provider:
    return Provider(name, ("api_key",), env_vars={var: "api_key"}, hint=hint)


_AWS_FIELDS = {"aws_access_key_id": "access_key", "aws_secret_access_key": "secret_key",
               "aws_session_token": "session_token"}
_GCP_FILE = "~/.config/gcloud/application_default_credentials.json"


@functools.cache
def providers() -> dict[str, Provider]:
    """Every provider ``rh.provider_secret`` knows, by name (built on first use: import time)."""
    return {p.name: p for p in _table()}


def _table() -> list[Provider]:
    return [
        Provider(
            "aws", ("access_key", "secret_key"), ("session_token",),
            env_vars={"AWS_ACCESS_KEY_ID": "access_key", "AWS_SECRET_ACCESS_KEY": "secret_key",
                      "AWS_SESSION_TOKEN": "session_token"},
            default_path="~/.aws/credentials",
            locate=_home_path("~/.aws/credentials", "AWS_SHARED_CREDENTIALS_FILE"),
            parse=_ini(lambda env: env.get("AWS_PROFILE") or "default", _AWS_FIELDS),
            files=_ini_files("default", _AWS_FIELDS), hint="run `aws configure`"),
        Provider(
            "gcp", ("type",), path_vars=("GOOGLE_APPLICATION_CREDENTIALS",), default_path=_GCP_FILE,
            locate=_home_path(_GCP_FILE, "GOOGLE_APPLICATION_CREDENTIALS"), parse=_json_parse,
            files=lambda values, path: [{"path": path, "content": json.dumps(values, indent=2)}],
            open_keys=True, hint="run `gcloud auth application-default login`"),
        Provider(
            "azure", ("subscription_id",), ("client_id", "client_secret", "tenant_id"),
            env_vars={"AZURE_SUBSCRIPTION_ID": "subscription_id", "AZURE_CLIENT_ID": "client_id",
                      "AZURE_CLIENT_SECRET": "client_secret", "AZURE_TENANT_ID": "tenant_id"},
            default_path="~/.azure/clouds.config",
            locate=_home_path("~/.azure/clouds.config", "AZURE_CONFIG_DIR", "clouds.config"),
            parse=_ini(lambda env: "AzureCloud", {"subscription": "subscription_id"}),
            files=_ini_files("AzureCloud", {"subscription": "subscription_id"}),
            hint="run `az login` and `az account set --subscription ...`"),
        Provider(
            "huggingface", ("token",), env_vars={"HF_TOKEN": "token", "HUGGING_FACE_HUB_TOKEN": "token"},
            default_path="~/.cache/huggingface/token",
            locate=_hf_locate,
            parse=_text_parse("token"), files=_whole("token"), hint="run `hf auth login`"),
        Provider(
            "github", ("oauth_token",), env_vars={"GH_TOKEN": "oauth_token", "GITHUB_TOKEN": "oauth_token"},
            default_path="~/.config/gh/hosts.yml",
            locate=_home_path("~/.config/gh/hosts.yml", "GH_CONFIG_DIR", "hosts.yml"),
            parse=_yaml_parse(_gh_hosts), files=_gh_files,
            hint="run `gh auth login` (a gh that keeps its token in the system keyring: "
                 "export GH_TOKEN=$(gh auth token))"),
        Provider(
            "ssh", ("private_key",), ("public_key",), default_path="~/.ssh/id_ed25519",
            parse=_text_parse("private_key", "PRIVATE KEY-----"), siblings={".pub": "public_key"},
            files=_whole("private_key", {"public_key": ".pub"}),
            hint="make a key with `ssh-keygen -t ed25519`, or name yours with key='id_rsa'"),
        Provider(
            "kubernetes", ("kubeconfig",), path_vars=("KUBECONFIG",), default_path="~/.kube/config",
            locate=_home_path("~/.kube/config", "KUBECONFIG"), parse=_yaml_parse(_kubeconfig),
            files=_whole("kubeconfig"), hint="point KUBECONFIG at your kubeconfig"),
        _api_key("openai", "OPENAI_API_KEY", "set OPENAI_API_KEY"),
        _api_key("anthropic", "ANTHROPIC_API_KEY", "set ANTHROPIC_API_KEY"),
        _api_key("cohere", "COHERE_API_KEY", "set COHERE_API_KEY"),
        _api_key("pinecone", "PINECONE_API_KEY", "set PINECONE_API_KEY"),
        _api_key("langchain", "LANGCHAIN_API_KEY", "set LANGCHAIN_API_KEY"),
        _api_key("wandb", "WANDB_API_KEY", "run `wandb login`, or set WANDB_API_KEY"),
    ]


def ssh_locate(key: str | None) -> Callable[[dict], tuple[Path, str]]:
    """The ``locate`` of an SSH key: ``~/.ssh/<key>``, or the first of the usual names."""
    def locate(environ: dict) -> tuple[Path, str]:
        folder = Path.home() / ".ssh"
        if key:
            return folder / key, f"key={key!r}"
        for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
            if (folder / name).exists():
                return folder / name, "the first of id_ed25519, id_ecdsa, id_rsa"
        return folder / "id_ed25519", "the default key (none of id_ed25519, id_ecdsa, id_rsa)"
    return locate


def read_local(p: Provider, locate: Callable[[dict], tuple[Path, str]] | None = None
               ) -> tuple[dict[str, str], str | None]:
    """The provider's credentials on this machine: its file's values, with its environment
    variables over them; and the file they came from. SecretNotFoundError, naming the file and
    the variables looked at, when the required keys are not all found."""
    environ = dict(os.environ)
    values: dict[str, str] = {}
    looked: list[str] = []
    found_file = None
    locate = locate or p.locate
    if locate is not None and p.parse is not None:
        path, how = locate(environ)
        looked.append(f"{path} ({how})")
        if path.is_file():
            values.update(p.parse(path.read_text(errors="replace"), path))
            found_file = str(path)
            for suffix, key in p.siblings.items():
                sibling = path.with_name(path.name + suffix)
                if sibling.is_file():
                    values[key] = sibling.read_text(errors="replace")
    for var, key in p.env_vars.items():
        if environ.get(var) and not (key in values and var in _SHADOWED):
            values[key] = environ[var]
    missing = [k for k in p.keys if not values.get(k)]
    if missing:
        where = " and ".join(filter(None, [
            f"the file {looked[0]}" if looked else "",
            f"the environment variables {', '.join(p.env_vars)}" if p.env_vars else ""]))
        shown = ", ".join(f"{k!r}: ..." for k in (*p.keys, *p.optional))
        raise SecretNotFoundError(
            f"no {p.name} credentials found on this machine (missing {', '.join(missing)}): "
            f"looked at {where}. To make them, {p.hint}; or give the values: "
            f"rh.provider_secret({p.name!r}, values={{{shown}}})")
    return {k: v for k, v in values.items() if v}, found_file


#: Variables that do not override the file's value (an older alias of another one).
_SHADOWED = {"HUGGING_FACE_HUB_TOKEN"}


def check_values(p: Provider, values: dict[str, str]) -> dict[str, str]:
    """Values given for a provider secret: its required keys present, no unknown key, all text
    (never shown in the message)."""
    if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in values.items()):
        raise ConfigError(f"the values of a {p.name} secret map key names to text")
    missing = [k for k in p.keys if not values.get(k)]
    unknown = [] if p.open_keys else sorted(set(values) - set(p.keys) - set(p.optional))
    if missing or unknown:
        raise ConfigError(
            f"a {p.name} secret has the keys {', '.join(p.keys)}"
            f"{' (and optionally ' + ', '.join(p.optional) + ')' if p.optional else ''}; "
            + (f"missing: {', '.join(missing)}" if missing else f"unknown: {', '.join(unknown)}"))
    return dict(values)
