"""``rh den ...``: serve a store, manage its users and groups, and your own tokens.

``serve`` and the ``--db`` forms of ``user add``/``group add`` work on the database directly
(the operator's tools, run where the database is); everything else goes through the store's
API with your login (``rh login``). Heavy imports happen inside the commands, since every
``rh`` command builds this group.
"""

from __future__ import annotations

import functools
import json

import typer

from rh_core.errors import RhError
from rh_core.plugin.registry import registry
from rh_den.errors import DenError

app = typer.Typer(name="den", help="The shared store of @/... names: serve it, manage users, "
                                   "groups and tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Users of a store.", no_args_is_help=True)
group_app = typer.Typer(help="Groups of a store (a folder their members write).",
                        no_args_is_help=True)
token_app = typer.Typer(help="Your tokens for the store you are logged in to.",
                        no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(group_app, name="group")
app.add_typer(token_app, name="token")

DB_HELP = "the database: a SQLite file path, or a postgresql://user:pw@host:5432/db URL"


def friendly(fn):
    """rh's and the store's errors as one line on stderr, exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DenError as e:
            typer.echo(f"error: {e.message}", err=True)
            raise typer.Exit(1) from None
        except RhError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _api():
    return registry().rns_store("@").client(need_login=True)


@app.command()
@friendly
def serve(db: str = typer.Option("den.sqlite", "--db", help=DB_HELP),
          host: str = typer.Option("127.0.0.1", help="address to listen on (loopback unless "
                                                     "told otherwise)"),
          port: int = typer.Option(8410, help="port to listen on; 0 picks a free one"),
          certfile: str = typer.Option(None, help="serve HTTPS with this certificate"),
          keyfile: str = typer.Option(None, help="the certificate's private key"),
          record: str = typer.Option(None, help="write {url, pid} here once listening"),
          secret_key_file: str = typer.Option(
              None, help="the key that encrypts users' secret values (made if missing); default "
                         "<db>.secret-key beside a SQLite file; PostgreSQL stores keep secrets "
                         "only with it")) -> None:
    """Serve the store (API, OpenAPI at /openapi.json, the management page at /)."""
    from rh_den.server import serve as run  # Hypercorn and SQLAlchemy: for this command only

    if bool(certfile) != bool(keyfile):
        raise typer.BadParameter("give --certfile and --keyfile together")
    run(db, host, port, record, certfile, keyfile, secret_key_file)


@user_app.command("add")
@friendly
def user_add(name: str, admin: bool = typer.Option(False, "--admin", help="may manage users "
                                                   "and groups"),
             email: str = typer.Option(None, help="their email address (sharing by email)"),
             db: str = typer.Option(None, "--db", help=DB_HELP + "; without it, through the "
                                    "store you are logged in to (admins)")) -> None:
    """Add a user and print their first token (once: it is not kept)."""
    if db:
        from rh_den.den import Den  # SQLAlchemy: only for the commands on the database

        den = Den(db)
        try:
            _, token = den.accounts.add_user(name, email, admin)
        finally:
            den.close()
    else:
        token = _api().request("POST", "/v1/users", json={"name": name, "email": email,
                                                          "admin": admin})["token"]
    typer.echo(f"added user {name}{' (admin)' if admin else ''}; their token (shown once):",
               err=True)
    typer.echo(token)


@user_app.command("list")
@friendly
def user_list(db: str = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Users of the store."""
    if db:
        from rh_den.den import Den  # SQLAlchemy: only for the commands on the database

        den = Den(db)
        try:
            users = den.accounts.users()
        finally:
            den.close()
    else:
        users = _api().request("GET", "/v1/users")
    for u in users:
        typer.echo(f"{u['name']}\t{u['email'] or '-'}\t{'admin' if u['admin'] else ''}")


@group_app.command("add")
@friendly
def group_add(name: str, members: str = typer.Option("", help="comma-separated users"),
              db: str = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Add a group with members (its folder @/<group> is theirs to write)."""
    listed = [m.strip() for m in members.split(",") if m.strip()]
    if db:
        from rh_den.den import Den  # SQLAlchemy: only for the commands on the database

        den = Den(db)
        try:
            kept = den.accounts.add_group(name, listed)
        finally:
            den.close()
    else:
        kept = _api().request("POST", "/v1/groups", json={"name": name, "members": listed})["members"]
    typer.echo(f"group {name}: {', '.join(kept) or 'no members'}")


@token_app.command("create")
@friendly
def token_create(name: str = typer.Option("default", help="a name to tell it by"),
                 expires: str = typer.Option(None, help="how long it works: 90s, 12h, 30d, 2w; "
                                                        "until revoked when omitted")) -> None:
    """A new token for yourself, printed once."""
    made = _api().request("POST", "/v1/tokens", json={"name": name, "expires": expires})
    typer.echo(f"token {made['id']} ({made['name']}, expires {made['expires'] or 'never'}); "
               f"shown once:", err=True)
    typer.echo(made["token"])


@token_app.command("list")
@friendly
def token_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Your tokens: id, name, created, last used, expiry (never the tokens)."""
    listed = _api().request("GET", "/v1/tokens")
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    typer.echo("id\tname\tcreated\tlast used\texpires\tstate")
    for t in listed:
        state = "revoked" if t["revoked"] else "expired" if t["expired"] else "active"
        typer.echo(f"{t['id']}\t{t['name']}\t{t['created']}\t{t['last_used'] or 'never'}\t"
                   f"{t['expires'] or 'never'}\t{state}")


@token_app.command("revoke")
@friendly
def token_revoke(token_id: str) -> None:
    """Revoke one of your tokens (by id, from rh den token list)."""
    _api().request("DELETE", f"/v1/tokens/{token_id}")
    typer.echo(f"revoked token {token_id}")


@token_app.command("rotate")
@friendly
def token_rotate(token_id: str) -> None:
    """Revoke a token and print its successor (same name and lifetime), once."""
    api = _api()
    mine = api.request("GET", "/v1/whoami")["token_id"] == token_id
    made = api.request("POST", f"/v1/tokens/{token_id}/rotate")
    if mine:  # this machine was logged in with it: carry on with its successor
        registry().rns_store("@").login(api.url, made["token"])
    typer.echo(f"token {token_id} revoked; its successor {made['id']} (shown once"
               f"{'; this machine is logged in with it now' if mine else ''}):", err=True)
    typer.echo(made["token"])
