"""Clusters: where functions run. A provider plugin brings the nodes and server up and down."""

from __future__ import annotations

import datetime
import json
import re
import threading
from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.names import shared
from rh_core.plugin.registry import registry
from rh_core.resources.base import Resource
from rh_core.resources.calls import ObjectRef

#: No default given (``None`` is a default).
_MISSING = object()


def _port(inst, attr, value):
    if value is not None and not (0 < value < 65536):
        raise ConfigError(f"server_port must be between 1 and 65535, got {value}")


@attrs.define(kw_only=True, slots=False)
class Cluster(Resource):
    """A set of nodes running the rh server, reached through a connection type."""

    resource_type: ClassVar[str] = "cluster"
    subtype: ClassVar[str] = ""

    #: Node addresses, head first (None for providers that allocate them).
    ips: list[str] | None = None
    #: Port the server listens on on the head node (provider default when None).
    server_port: int | None = attrs.field(default=None, validator=_port)
    #: Address the server binds on its node; loopback unless the cluster is exposed.
    server_host: str = "127.0.0.1"
    #: How the client reaches the server: ``none`` (plain http), ``tls``, ``ssh``...
    server_connection_type: str = "none"
    #: Require a bearer token on every route but health.
    den_auth: bool = False
    #: The shared store whose tokens the server accepts (with ``den_auth``; rh-den); None: the
    #: store this machine is logged in to, if any.
    den_url: str | None = None
    #: How long the server keeps the store's answer about a token (a revoke takes effect
    #: within it).
    den_cache_seconds: int = attrs.field(default=30, validator=attrs.validators.ge(0))
    #: TLS certificate and key the server presents (``tls`` connections); a self-signed pair is
    #: made for the cluster when they are not given.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: CA certificates (a PEM file) to check the server's certificate against instead of the
    #: system's CAs: for a certificate from a private CA.
    ssl_ca_bundle: str | None = None
    #: A domain name the cluster is reached by (added to a self-signed certificate's names).
    domain: str | None = None
    #: Put Caddy in front of the server (also implied by server_port 80 or 443); needs rh-caddy.
    use_caddy: bool = False
    #: Largest request body the server takes from a caller with a token, in MiB (server default
    #: 8192); callers without a token may send at most 64 MiB.
    max_body_mb: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        attrs.validators.ge(1)))

    @property
    def default_port(self) -> int:
        """The port clients use: ``server_port``, else 443 for tls, 80 for none, else 32300."""
        if self.server_port:
            return self.server_port
        return {"tls": 443, "none": 80}.get(self.server_connection_type, 32300)

    def server_settings(self) -> dict[str, Any]:
        """Settings for the server and plugins' server hooks, which providers pass to
        ``rh_server`` as ``--setting KEY=JSON``: ``autostop_mins`` (the server's idle rule) when
        the cluster's provider has that field and it is above 0; ``den`` (the store that judges
        tokens, and the cluster's ``@`` name there) when ``den_auth`` is on and a store is
        known."""
        settings: dict[str, Any] = {}
        mins = getattr(self, "autostop_mins", None)
        if isinstance(mins, (int, float)) and not isinstance(mins, bool) and mins > 0:
            settings["autostop_mins"] = mins
        if not self.den_auth:
            return settings
        url, user = self.den_url or shared.store_url(), shared.logged_in_user()
        address = self.rns_address or ""
        name = address[2:] if address.startswith("@/") else (
            f"{user}/{self.short_name}" if user and self.short_name else None)
        if url and name:
            settings["den"] = {"url": url, "cluster": name,
                               "cache_seconds": self.den_cache_seconds}
        return settings

    @property
    def fronted(self) -> bool:
        """Whether a reverse proxy (Caddy) fronts the server."""
        return self.use_caddy or self.server_port in (80, 443)

    # ------------------------------------------------------------------ runtime

    def _runtime(self) -> dict:
        rt = self.__dict__.get("_rt")
        if rt is None:
            rt = self.__dict__["_rt"] = {"lock": threading.RLock()}
        return rt

    @property
    def provider(self):
        """The compute provider object managing this cluster."""
        rt = self._runtime()
        if "provider" not in rt:
            rt["provider"] = registry().provider(self.subtype)(self)
        return rt["provider"]

    def up_if_not(self) -> Cluster:
        """Bring the cluster and its server up if they are not (idempotent)."""
        self.client()
        return self

    def up(self) -> Cluster:
        """Bring the cluster and its server up (the same as :meth:`up_if_not`)."""
        return self.up_if_not()

    def is_up(self) -> bool:
        """Whether the server answers (does not start anything)."""
        ep = self.provider.endpoint()
        if ep is None:
            return False
        try:
            self.client().health()
            return True
        except Exception:
            return False

    def _connect(self):
        conn_cls = registry().connection_type(self.server_connection_type)
        endpoint = self.provider.up()
        conn = conn_cls(self, endpoint)
        return conn, conn.open(), endpoint.token

    def client(self):
        """The HTTP client of this cluster's server (brings the cluster up on first use)."""
        # httpx (under the client) costs tens of ms to import: `import rh_core` and the CLI
        # commands that never call a server do without it.
        from rh_core.transport.client import Client

        rt = self._runtime()
        with rt["lock"]:
            if "client" not in rt:
                conn, info, token = self._connect()
                rt["connection"] = conn

                def reconnect():
                    conn2, info2, token2 = self._connect()
                    old, rt["connection"] = rt.get("connection"), conn2
                    if old is not None and old is not conn2:
                        old.close()  # what it held (a tunnel, a session's process) is replaced
                    return info2, token2

                def explain():
                    conn = rt.get("connection")
                    return conn.explain_drop() if conn is not None else None

                rt["client"] = Client(info, token, self.short_name or self.subtype, reconnect,
                                      explain)
            return rt["client"]

    def _forget_client(self) -> None:
        rt = self._runtime()
        with rt["lock"]:
            client = rt.pop("client", None)
            if client:
                client.close()
            conn = rt.pop("connection", None)
            if conn:
                conn.close()

    def status(self) -> dict[str, Any]:
        """What the server reports: envs, workers, uptime, versions, served names."""
        return self.client().status()

    def run(self, commands: list[str] | str, timeout: float | None = None
            ) -> list[tuple[int, str, str]]:
        """Shell commands on the cluster (its head node, as the server's user, in its home
        folder), one after the other: ``[(returncode, stdout, stderr), ...]``."""
        cmds = [commands] if isinstance(commands, str) else list(commands)
        return self.client().run_commands(cmds, timeout=timeout)

    def run_python(self, lines: list[str] | str, env: str | None = None,
                   timeout: float | None = None) -> list[tuple[int, str, str]]:
        """Python code (the lines joined) run on the cluster with its Python, or with the
        Python of the env ``env``: ``[(returncode, stdout, stderr)]``."""
        code = [lines] if isinstance(lines, str) else list(lines)
        return self.client().run_commands(code, python=True, env=env, timeout=timeout)

    def run_setup(self, commands: list[str] | str) -> list[tuple[int, str, str]]:
        """Setup commands run once per cluster: a command that ran before (recorded on the
        cluster) is skipped; a failing one is not recorded and raises ConfigError."""
        cmds = [commands] if isinstance(commands, str) else list(commands)
        out = self.client().run_commands(cmds, setup=True)
        for cmd, (code, stdout, stderr) in zip(cmds, out, strict=False):  # it stops at a failure
            if code != 0:
                raise ConfigError(f"setup command `{cmd}` failed on cluster {self.short_name!r} "
                                  f"(exit code {code}): {(stdout + stderr)[-2000:]}")
        return out

    def keep_warm(self, mins: int = -1) -> Cluster:
        """Keep the cluster up for ``mins`` minutes of idleness (-1: until it is brought down).
        The local cluster and bring-your-own clusters never stop by themselves, so for them
        this only records the wish; providers with an autostop apply it."""
        self.__dict__["_keep_warm_mins"] = mins
        apply = getattr(self.provider, "keep_warm", None)
        if apply is not None:
            apply(mins)
        return self

    def runs(self) -> list[dict]:
        """Runs kept on the cluster, calls running now and the last ones that ended, oldest
        first: ``run_key``, ``name``, ``method``, ``kind`` (``run``, ``call``, ``stream``,
        ``map``), ``status`` (``running``, ``done``, ``error``, ``cancelled``), ``created``,
        ``finished``, ``duration`` (seconds)."""
        return self.client().runs()

    def cancel(self, run_key: str) -> bool:
        """Stop the run or call ``run_key`` (from :meth:`runs`); whether it was running."""
        return self.client().cancel_run(run_key)["cancelled"]

    def keys(self) -> list[str]:
        """Names served on the cluster and keys of the objects kept there."""
        client = self.client()
        return sorted({*client.keys(), *(o["key"] for o in client.objects())})

    def put(self, key: str, obj: Any) -> ObjectRef:
        """Keep ``obj`` on the cluster under ``key`` (replacing what was there). Returns a
        reference that calls on this cluster take as the object itself."""
        self.client().put_object(key, obj)
        return ObjectRef(key, self.config())

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The object kept under ``key``; KeyError (``key KEY not found``) when there is none,
        unless ``default`` is given."""
        try:
            return self.client().get_object(key)
        except KeyError:
            if default is _MISSING:
                raise
            return default

    def ref(self, key: str) -> ObjectRef:
        """A reference to the object ``key``, to pass to calls on this cluster."""
        return ObjectRef(key, self.config())

    def delete(self, key: str) -> None:
        """Stop serving ``key`` on the cluster, or delete the object kept under it."""
        client = self.client()
        if client.delete_object(key):
            if key not in client.keys():
                return
        client.delete(key)

    def grant(self, user: str, access_level: str = "read", resources: list[str] | None = None,
              expires_in: float | datetime.timedelta | str | None = None) -> str:
        """Mint a token for ``user`` with ``read`` (call functions) or ``write`` (also put and
        delete code) access on ``resources`` (names; all when None), working until revoked or,
        with ``expires_in`` (seconds, a timedelta, or text such as ``"30d"``, ``"12h"``,
        ``"15m"``), until then. Returns the token; only its hash is kept on the cluster, so it
        cannot be shown again."""
        if access_level not in ("read", "write"):
            raise ConfigError(f"access_level must be 'read' or 'write', got {access_level!r}")
        seconds = duration_seconds(expires_in) if expires_in is not None else None
        return self.client().create_token(user, access_level, list(resources or ["*"]),
                                          seconds)["token"]

    def revoke(self, user_or_token_id: str) -> list[str]:
        """Revoke every token of a user (or one token by its id); returns the revoked ids."""
        return self.client().revoke_token(user_or_token_id)

    def tokens(self) -> list[dict]:
        """Tokens given to other users: id, user, grants, created, expires (epoch seconds or
        None) and expired (never the token itself)."""
        return self.client().list_tokens()

    def logs(self) -> str:
        """The server's own log."""
        text = self.provider.server_log()
        return text if text else self.client().server_log()

    def access_log(self) -> list[dict]:
        """The server's access log, oldest first (its last MiB): one entry per request with
        ``time``, ``client``, ``caller`` (``owner``, a token's user, or ``anonymous``),
        ``token_id``, ``method``, ``path``, ``status`` and ``ms``."""
        lines = self.client().server_log(access=True).splitlines()
        out = []
        for line in lines[1:] if len(lines) > 1 and not lines[0].startswith("{") else lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # the first line of a tail may be cut
        return out

    def restart_server(self) -> Cluster:
        """Stop the server and start a new one; served names come back, held results do not."""
        self._forget_client()
        self.provider.restart_server()
        return self

    def down(self) -> None:
        """Stop the server (and, for cloud providers, the nodes)."""
        self._forget_client()
        self.provider.down()

    def teardown(self) -> None:
        """The same as :meth:`down`."""
        self.down()

    def save(self, name: str | None = None) -> Cluster:
        """Save the config under the cluster's name (or a folder path ending in that name): a
        running cluster is found by its name, so saving cannot rename it."""
        if name and self.name:
            wanted = name.rsplit("/", 1)[-1].lstrip("~^@")
            if wanted != self.short_name:
                raise ConfigError(
                    f"cluster {self.short_name!r} can only be saved under its own name (e.g. "
                    f"'~/{self.short_name}'); make a new cluster to use the name {wanted!r}")
        return super().save(name)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_rt"}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(value: float | datetime.timedelta | str) -> float:
    """Seconds from a number of seconds, a timedelta, or text like ``"90s"``, ``"15m"``,
    ``"12h"``, ``"30d"``, ``"2w"``; above zero."""
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ConfigError(f"a duration is seconds, a timedelta or text like '30d', '12h', '15m'; "
                          f"got {value!r}")
    if not seconds > 0:
        raise ConfigError(f"a duration must be above zero, got {value!r}")
    return seconds
