"""The ``@`` name store on the client: ``rh.load("@/alice/summer")`` and friends go to the store
at ``den_url`` (the user config's key, or ``RH_DEN_URL``) with the logged-in token.

Logging in keeps the token in the secret backend (the system keyring by default) under
``den:<url>``, never in a config file; ``RH_DEN_TOKEN`` overrides it (CI). The user's name is
kept beside the token, so that bare names can go to ``@/<user>`` without asking the store.
"""

from __future__ import annotations

import json
import os

from rh_core import user_config
from rh_core.errors import ConfigError
from rh_core.names import resolve, secrets
from rh_core.plugin import RnsStore
from rh_den.client import DenClient, forget, path_url


def _key(url: str) -> str:
    return f"den:{url.rstrip('/')}"


def _split(name: str) -> str:
    """``@/alice/x`` (as the store answers) -> ``alice/x``; folders keep their ``/``."""
    return name[2:] if name.startswith("@/") else name


class DenStore(RnsStore):
    """The shared store, registered for the prefix ``@``."""

    prefix = "@"
    secret_backend = "den"

    def __init__(self):
        self._login: dict[str, dict | None] = {}

    # ------------------------------------------------------------------ who and where

    def url(self) -> str | None:
        url = user_config.value("den_url")
        return url.rstrip("/") if url else None

    def _saved(self, url: str) -> dict | None:
        """``{"token", "user"}`` kept at login for ``url`` (read from the backend once)."""
        if url not in self._login:
            text = secrets.secret_backend().get(_key(url))
            self._login[url] = json.loads(text) if text else None
        return self._login[url]

    def _token(self, url: str) -> str | None:
        env = os.environ.get("RH_DEN_TOKEN")
        if env:
            return env
        saved = self._saved(url)
        return saved["token"] if saved else None

    def client(self, need_login: bool = False) -> DenClient:
        url = self.url()
        if url is None:
            raise ConfigError("no shared store is set: log in with rh login URL --token TOKEN "
                              "(or set den_url: rh config set den_url URL)")
        token = self._token(url)
        if need_login and token is None:
            raise ConfigError(f"not logged in to the shared store at {url}: rh login {url} "
                              f"--token TOKEN")
        return DenClient(url, token)

    def location(self) -> str:
        return self.url() or "@ (no shared store set: rh login URL)"

    def login(self, url: str, token: str) -> str:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"the store's address must be an http(s) URL, got {url!r:.80}")
        if not token or not isinstance(token, str):
            raise ConfigError("give the token an admin made for you (rh den user add) or one "
                              "you created (rh den token create)")
        url = url.rstrip("/")
        me = DenClient(url, token).request("GET", "/v1/whoami")
        secrets.secret_backend().set(_key(url), json.dumps({"token": token, "user": me["user"]}))
        user_config.set_value("den_url", url)
        self._login[url] = {"token": token, "user": me["user"]}
        return me["user"]

    def logout(self) -> None:
        url = self.url()
        if url is None:
            return
        saved = self._saved(url)
        secrets.secret_backend().delete(_key(url))
        self._login.pop(url, None)
        forget(url, saved["token"] if saved else None)
        user_config.unset_value("den_url")

    def whoami(self) -> str | None:
        url = self.url()
        if url is None:
            return None
        env = os.environ.get("RH_DEN_TOKEN")
        if env:  # asked once per store and token
            key = f"{url} {env}"
            if key not in self._login:
                me = DenClient(url, env).request("GET", "/v1/whoami")
                self._login[key] = {"token": env, "user": me["user"]}
            return self._login[key]["user"]
        saved = self._saved(url)
        return saved["user"] if saved else None

    def _full(self, path: str) -> str:
        """``summer`` (from ``@/summer``) -> ``<whoami>/summer``: a name with no folder is in the
        logged-in user's."""
        if "/" in path or not path:
            return path
        user = self.whoami()
        if user is None:
            raise ConfigError(f"@/{path} means @/<you>/{path}, and you are not logged in: rh "
                              f"login URL --token TOKEN, or give the folder: @/<user>/{path}")
        return f"{user}/{path}"

    # ------------------------------------------------------------------ names

    def load(self, path: str) -> dict | None:
        found = self.load_version(path, None)
        return None if found is None else found[0]

    def load_version(self, path: str, version: int | None = None):
        path = self._full(path)
        params = {"version": version} if version is not None else None
        answer = self.client().request("GET", f"/v1/resources/{path_url(path)}", params=params,
                                       missing_ok=True)
        return None if answer is None else (answer["config"], answer["version"])

    def save(self, path: str, config: dict) -> None:
        self.save_version(path, config, None)

    def save_version(self, path: str, config: dict, base_version: int | None) -> int:
        path = self._full(path)
        body = {"config": config, "base_version": base_version, "cluster": _cluster_of(config)}
        answer = self.client(need_login=True).request("PUT", f"/v1/resources/{path_url(path)}",
                                                      json=body)
        return answer["version"]

    def delete(self, path: str) -> bool:
        path = self._full(path)
        answer = self.client(need_login=True).request(
            "DELETE", f"/v1/resources/{path_url(path)}", missing_ok=True)
        return answer is not None

    def list(self, folder: str) -> list[str]:
        if not folder:
            me = self.client(need_login=True).request("GET", "/v1/whoami")
            return [f"{f}/" for f in (me["user"], *me["groups"])]
        answer = self.client().request("GET", f"/v1/folders/{path_url(folder)}")
        return [_split(r["name"]) for r in answer["resources"]] + \
            [_split(f) for f in answer["folders"]]

    def resources(self, folder: str) -> list[tuple[str, str]]:
        if not folder:
            return []
        answer = self.client().request("GET", f"/v1/folders/{path_url(folder)}")
        return [(_split(r["name"]), r["resource_type"]) for r in answer["resources"]]

    def history(self, path: str) -> list[dict]:
        path = self._full(path)
        return self.client().request("GET", f"/v1/history/{path_url(path)}")

    def share(self, path: str, principals: list[str], access_level: str,
              visibility: str | None) -> dict:
        path = self._full(path)
        body = {"principals": principals, "access_level": access_level}
        if visibility is not None:
            body["visibility"] = visibility
        return self.client(need_login=True).request("POST", f"/v1/shares/{path_url(path)}",
                                                    json=body)

    def revoke(self, path: str, principals: list[str]) -> dict:
        path = self._full(path)
        return self.client(need_login=True).request("POST", f"/v1/revoke/{path_url(path)}",
                                                    json={"principals": principals})


def _cluster_of(config: dict) -> str | None:
    """The ``@`` name (without ``@/``) of the cluster a function or module runs on, so that
    the cluster can let in the users it is shared with."""
    system = config.get("system")
    name = system.get("name") if isinstance(system, dict) else system
    if not isinstance(name, str) or not name:
        return None
    try:
        full = resolve.full_name(name)
    except ConfigError:
        return None
    return full[2:] if full.startswith("@/") else None
