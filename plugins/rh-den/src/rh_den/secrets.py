"""The ``den`` secret backend: secret values kept by the shared store you are logged in to,
encrypted there with the store's key, readable only by you, from any machine you log in on.

``rh.secret(name="openai", values={...}, backend="den").save("@/alice/secrets")`` (or
``secret_backend: den`` in your defaults) keeps the values in the store and the reference
beside them, so ``rh.secret("@/alice/secrets/openai").values`` works after ``rh login`` on
another machine. ``rh.login(upload_secrets=True)`` uploads the credentials found here this way.
"""

from __future__ import annotations

from rh_core.plugin import SecretBackend
from rh_core.plugin.registry import registry
from rh_den.client import DenClient, path_url


def _client() -> DenClient:
    return registry().rns_store("@").client(need_login=True)


class DenSecrets(SecretBackend):
    """Values in the shared store, under the logged-in user."""

    name = "den"

    def get(self, key: str) -> str | None:
        answer = _client().request("GET", f"/v1/secrets/{path_url(key)}", missing_ok=True)
        return None if answer is None else answer["value"]

    def set(self, key: str, value: str) -> None:
        _client().request("PUT", f"/v1/secrets/{path_url(key)}", json={"value": value})

    def delete(self, key: str) -> None:
        _client().request("DELETE", f"/v1/secrets/{path_url(key)}")

    def list(self, prefix: str) -> list[str]:
        keys = _client().request("GET", "/v1/secrets", params={"prefix": prefix})["keys"]
        return [k[len(prefix):] for k in keys]
