"""The server's routes other than calls, as methods of the client: served names, status,
objects kept under keys, runs, tokens and logs. :class:`~rh_core.transport.client.Client`
inherits them."""

from __future__ import annotations

import json
from typing import Any, Iterator

import httpx

from rh_core import errors
from rh_core.transport import wire


class Management:
    """Needs ``request``, ``check``, ``get_json``, ``http``, ``info``, ``cluster_name`` and
    ``_done`` from the client it is mixed into."""

    def health(self) -> dict:
        return self.get_json("/health")

    def status(self) -> dict:
        return self.get_json("/status")

    def keys(self) -> list[str]:
        return self.get_json("/keys")["keys"]

    def restart(self) -> dict:
        """Ask a supervised server to stop and be started again (``POST /restart``, owner
        only); ``{"restarting": True, "pid": <the stopping server's>}``."""
        return self.check(self.request("POST", "/restart")).json()

    def put(self, name: str, spec: dict) -> dict:
        resp = self.request("PUT", f"/{name}", content=json.dumps(spec),
                            headers={"Content-Type": wire.JSON_CT})
        return self.check(resp).json()

    def delete(self, name: str) -> None:
        self.check(self.request("DELETE", f"/{name}"))

    def create_token(self, user: str, access: str, resources: list[str],
                     expires_in: float | None = None) -> dict:
        body = json.dumps({"user": user, "access": access, "resources": resources,
                           "expires_in": expires_in})
        resp = self.request("POST", "/auth/tokens", content=body,
                            headers={"Content-Type": wire.JSON_CT})
        return self.check(resp).json()

    def list_tokens(self) -> list[dict]:
        return self.get_json("/auth/tokens")["tokens"]

    def put_object(self, key: str, obj: Any) -> dict:
        """Keep ``obj`` on the cluster under ``key`` (pickled; large buffers through shared
        memory on this machine)."""
        shm = self.info.shm_dir
        names: list[str] = []
        try:
            parts = wire.dumps_pickle(obj, None, shm, names)
        except Exception as e:
            raise errors.SerializationError(
                f"the object put under {key!r} could not be pickled: {e}") from None
        try:
            resp = self.request("PUT", f"/objects/{key}", content=wire.joined(parts),
                                headers={"Content-Type": wire.PICKLE_CT})
            return self.check(resp).json()
        finally:
            self._done(names)

    def get_object(self, key: str) -> Any:
        """The object kept under ``key``; KeyError when there is none."""
        path = f"/objects/{key}?rh_shm=1" if self.info.shm_dir else f"/objects/{key}"
        resp = self.request("GET", path, headers={"Accept": f"{wire.PICKLE_CT}, {wire.JSON_CT}"})
        if resp.status_code == 404 and _kind(resp) == "object_not_found":
            raise KeyError(f"key {key} not found")
        self.check(resp)
        if resp.headers.get("content-type", "").startswith(wire.JSON_CT):
            return resp.json()
        return wire.loads_pickle(bytearray(resp.content), shm=self.info.shm_dir)

    def delete_object(self, key: str) -> bool:
        """Delete the object ``key``; whether there was one."""
        resp = self.request("DELETE", f"/objects/{key}")
        if resp.status_code == 404 and _kind(resp) == "object_not_found":
            return False
        self.check(resp)
        return True

    def objects(self) -> list[dict]:
        return self.get_json("/objects")["objects"]

    def run_commands(self, commands: list[str], python: bool = False, env: str | None = None,
                     setup: bool = False, timeout: float | None = None) -> list[tuple]:
        """Shell commands (or Python code) on the server's node: ``[(code, stdout, stderr)]``."""
        body = json.dumps({"commands": commands, "python": python, "env": env, "setup": setup,
                           "timeout": timeout})
        resp = self.request("POST", "/commands", content=body,
                            headers={"Content-Type": wire.JSON_CT})
        return [tuple(r) for r in self.check(resp).json()["results"]]

    def put_secret(self, name: str, body: dict) -> dict:
        """Send a secret (``PUT /secrets/{name}``): its values travel in this body only."""
        resp = self.request("PUT", f"/secrets/{name}", content=json.dumps(body),
                            headers={"Content-Type": wire.JSON_CT})
        return self.check(resp).json()

    def rename(self, name: str, new: str) -> dict:
        resp = self.request("PATCH", f"/{name}", content=json.dumps({"rename": new}),
                            headers={"Content-Type": wire.JSON_CT})
        return self.check(resp).json()

    def revoke_token(self, who: str) -> list[str]:
        return self.check(self.request("DELETE", f"/auth/tokens/{who}")).json()["revoked"]

    def server_log(self, access: bool = False) -> str:
        return self.check(self.request("GET", "/logs?access=1" if access else "/logs")).text

    def get_run(self, run_key: str, timeout: float | None = None) -> Any:
        """The run's result, waiting at most ``timeout`` seconds (then RunTimeoutError)."""
        path = f"/runs/{run_key}" if timeout is None else f"/runs/{run_key}?rh_timeout={timeout}"
        resp = self.check(self.request("GET", path))
        if resp.status_code == 202:
            raise errors.RunTimeoutError(
                f"run {run_key!r} on cluster {self.cluster_name!r} did not end within {timeout} "
                f"s; it goes on (rh.get(handle) again to wait, handle.cancel() to stop it)",
                run_key)
        return wire.loads_pickle(bytearray(resp.content))

    def cancel_run(self, run_key: str) -> dict:
        return self.check(self.request("POST", f"/runs/{run_key}/cancel")).json()

    def runs(self) -> list[dict]:
        return self.get_json("/runs")["runs"]

    def run_logs(self, run_key: str) -> Iterator[str]:
        with self.http.stream("GET", f"/runs/{run_key}/logs") as resp:
            if resp.status_code >= 400:
                resp.read()
                self.check(resp)
            yield from resp.iter_text()

    def delete_run(self, run_key: str) -> None:
        self.check(self.request("DELETE", f"/runs/{run_key}"))



def _kind(resp: httpx.Response) -> str | None:
    try:
        return resp.json()["error"]["kind"]
    except (ValueError, KeyError, TypeError):
        return None
