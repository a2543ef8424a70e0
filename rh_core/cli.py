"""The ``rh`` command line."""

from __future__ import annotations

import functools
import getpass
import json
import sys
import time
from pathlib import Path

import attrs
import typer
from rich.console import Console
from rich.table import Table

from rh_core import configs, user_config
from rh_core.builtin.local import cluster_from_record
from rh_core.errors import ResourceNotFoundError, RhError
from rh_core.names import resolve
from rh_core.paths import rh_home
from rh_core.plugin.registry import registry
from rh_core.resources import secret_factories as sf
from rh_core.resources.factories import cluster

app = typer.Typer(help="rh: run Python on other hardware.", no_args_is_help=True,
                  add_completion=False)
console = Console()


def _cluster(name: str):
    """A saved cluster, ``local``, or a local cluster this machine has run under that name."""
    if name == "local":
        return cluster_from_record("local")
    try:
        return cluster(name)
    except ResourceNotFoundError:
        if (rh_home() / "clusters" / name).is_dir():
            return cluster_from_record(name)
        raise


def friendly(fn):
    """Print rh's own errors as one clear line on stderr (exit code 1), not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RhError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List installed plugins, their versions and the hooks they implement."""
    infos = registry().plugin_infos()
    if as_json:
        typer.echo(json.dumps([attrs.asdict(i) for i in infos], indent=2))
        return
    table = Table(title="rh plugins")
    for col in ("name", "distribution", "version", "hooks", "registers"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.name, i.distribution or "-", i.version or "-", ", ".join(i.hooks),
                      ", ".join(i.registers) or "-")
    _show(table)


@app.command()
@friendly
def status(name: str = typer.Argument("local", help="cluster name")) -> None:
    """Show a cluster's server status: envs, workers, uptime, versions."""
    cluster = _cluster(name)
    if not cluster.is_up():
        typer.echo(f"cluster {name!r} is not up")
        raise typer.Exit(1)
    typer.echo(json.dumps(cluster.status(), indent=2))


@app.command()
@friendly
def up(name: str = typer.Argument("local")) -> None:
    """Bring a cluster's server up (no-op when it is)."""
    c = _cluster(name).up_if_not()
    typer.echo(f"cluster {name!r} is up at {c.client().info.base_url}")


@app.command()
@friendly
def restart(name: str = typer.Argument("local")) -> None:
    """Restart a cluster's server."""
    _cluster(name).restart_server()
    typer.echo(f"restarted the server of {name!r}")


@app.command()
@friendly
def down(name: str = typer.Argument("local")) -> None:
    """Stop a cluster's server."""
    _cluster(name).down()
    typer.echo(f"stopped the server of {name!r}")


@app.command()
@friendly
def logs(name: str = typer.Argument("local"),
         access: bool = typer.Option(False, "--access", help="the access log: who called what")
         ) -> None:
    """Print the server's own log (or its access log)."""
    if access:
        typer.echo(_cluster(name).client().server_log(access=True), nl=False)
        return
    typer.echo(_cluster(name).logs(), nl=False)


@app.command("ls")
@friendly
def ls(folder: str = typer.Argument("~", help="a folder of names: ~, ~/proj, proj, ^")) -> None:
    """List saved names under a folder: in a git repository with an rh/ folder, its names and
    then the rh home's, each under the place that holds it."""
    home = str(Path.home())
    if home != "/" and (folder == home or folder.startswith(home + "/")):
        folder = "~" + folder[len(home):]  # the shell expanded `rh ls ~/proj`: a name was meant
    seen: set[str] = set()
    for place, names in resolve.places(folder).items():
        typer.echo(f"{place}:")
        for n in names:
            hidden = "  (hidden: loading finds the one above)" if n in seen else ""
            typer.echo(f"  {n}{hidden}")
        if not names:
            typer.echo("  (nothing saved here)")
        seen.update(names)


@app.command()
@friendly
def runs(name: str = typer.Argument("local", help="cluster name"),
         as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Runs kept on a cluster, calls running now and the last ones that ended."""
    listed = _cluster(name).runs()
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    table = Table(title=f"runs on {name}")
    for col in ("run key", "name", "kind", "status", "started", "seconds"):
        table.add_column(col)
    for r in listed:
        table.add_row(r["run_key"], f"{r['name']}.{r['method']}", r.get("kind", "run"),
                      r["status"], _when(r["created"]), f"{r.get('duration', 0):.3f}")
    _show(table)


@app.command()
@friendly
def ssh(name: str = typer.Argument(..., help="cluster name"),
        command: list[str] = typer.Argument(None, help="a command to run instead of a shell")) -> None:
    """Open a shell on a cluster's head node (clusters reached over SSH)."""
    cluster = _cluster(name)
    if not hasattr(cluster, "ssh"):
        raise typer.BadParameter(f"cluster {name!r} is not reached over SSH")
    raise typer.Exit(cluster.ssh(" ".join(command) if command else None))


@app.command()
@friendly
def notebook(name: str = typer.Argument(..., help="cluster name"),
             port: int = typer.Option(8888, help="JupyterLab's port on the node")) -> None:
    """Start JupyterLab on a cluster's head node and print the URL to open (via a tunnel)."""
    cluster = _cluster(name)
    if not hasattr(cluster, "notebook"):
        raise typer.BadParameter(f"cluster {name!r} is not reached over SSH")
    typer.echo(cluster.notebook(port))


token_app = typer.Typer(help="Tokens that let other users call a cluster's functions.",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
@friendly
def token_create(
    user: str = typer.Argument(..., help="who the token is for"),
    cluster: str = typer.Option("local", "--cluster", "-c"),
    access: str = typer.Option("read", help="read (call) or write (also put/delete code)"),
    resource: list[str] = typer.Option(None, "--resource", "-r",
                                       help="a served name (repeat); all when omitted"),
    expires: str = typer.Option(None, "--expires", "-e",
                                help="how long it works: 90s, 15m, 12h, 30d, 2w; until revoked "
                                     "when omitted"),
) -> None:
    """Mint a token; it is printed once and only its hash is kept on the cluster."""
    typer.echo(_cluster(cluster).grant(user, access, resource or None, expires_in=expires))


@token_app.command("list")
@friendly
def token_list(cluster: str = typer.Option("local", "--cluster", "-c"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the tokens given on a cluster: id, user, grants, created, expires (never the
    tokens themselves)."""
    tokens = _cluster(cluster).tokens()
    if as_json:
        typer.echo(json.dumps(tokens, indent=2))
        return
    table = Table(title=f"tokens of {cluster}")
    for col in ("id", "user", "grants", "created", "expires"):
        table.add_column(col)
    for t in tokens:
        grants = ", ".join(f"{level} on {name}" for name, level in t["grants"].items())
        expires = _when(t.get("expires")) if t.get("expires") else "never"
        if t.get("expired"):
            expires += " (expired)"
        table.add_row(t["id"], t["user"], grants, _when(t["created"]), expires)
    _show(table)


def _show(table: Table) -> None:
    """A table; piped to another program, it is not wrapped to 80 columns."""
    (console if console.is_terminal else Console(width=200)).print(table)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


@token_app.command("revoke")
@friendly
def token_revoke(who: str = typer.Argument(..., help="a user, or a token id"),
                 cluster: str = typer.Option("local", "--cluster", "-c")) -> None:
    """Revoke a user's tokens (or one token by id)."""
    typer.echo(f"revoked: {', '.join(_cluster(cluster).revoke(who))}")


secret_app = typer.Typer(help="Secrets: values in the secret backend, references under ~/secrets.",
                         no_args_is_help=True)
app.add_typer(secret_app, name="secret")


@secret_app.command("list")
@friendly
def secret_list(backend: str = typer.Option(None, help="list what this backend holds instead")
                ) -> None:
    """List the saved secrets: name, provider, backend and keys (never a value)."""
    if backend:
        typer.echo("\n".join(sf.secrets(backend=backend)))
        return
    table = Table(title="secrets")
    for col in ("name", "provider", "backend", "keys"):
        table.add_column(col)
    for name in sf.secrets():
        s = sf.load_secret(name)
        table.add_row(name, s.provider or "-", s.backend or "-", ", ".join(s.keys))
    _show(table)


@secret_app.command("set")
@friendly
def secret_set(name: str = typer.Argument(...),
               pairs: list[str] = typer.Argument(..., help="KEY=VALUE, KEY=- (read from stdin) or "
                                                 "KEY (asked for, not echoed)"),
               backend: str = typer.Option(None, help="where the values go (default: the "
                                           "secret_backend config)"),
               overwrite: bool = typer.Option(False, help="replace a secret saved under NAME")
               ) -> None:
    """Save a secret of your own. A value typed on the command line stays in the shell's history
    and is seen by other local users while the command runs: prefer KEY or KEY=-."""
    values = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            value = getpass.getpass(f"{key}: ")
        elif value == "-":
            value = sys.stdin.readline().rstrip("\n")
        values[key] = value
    sf.secret(name=name, values=values, backend=backend).save(overwrite=overwrite)
    typer.echo(f"saved secret {name!r} (keys: {', '.join(sorted(values))})")


@secret_app.command("get")
@friendly
def secret_get(name: str = typer.Argument(...),
               show: bool = typer.Option(False, "--show", help="print the values (JSON)")) -> None:
    """Show a saved secret: its reference, and its values only with --show."""
    s = sf.load_secret(name)
    if show:
        typer.echo(json.dumps(s.values, indent=2))
        return
    typer.echo(json.dumps({"name": s.name, "provider": s.provider, "backend": s.backend,
                           "keys": s.keys, "saved_at": s.rns_address}, indent=2))


@secret_app.command("delete")
@friendly
def secret_delete(name: str = typer.Argument(...)) -> None:
    """Delete a saved secret: its values from the backend and its reference."""
    sf.load_secret(name).delete()
    typer.echo(f"deleted secret {name!r}")


@secret_app.command("to")
@friendly
def secret_to(name: str = typer.Argument(...), cluster_name: str = typer.Argument(...),
              env: str = typer.Option(None, help="the env whose workers get its variables")) -> None:
    """Send a saved secret to a cluster (files in its home, variables of an env's workers)."""
    sf.load_secret(name).to(_cluster(cluster_name), env=env)
    typer.echo(f"sent secret {name!r} to cluster {cluster_name!r}")


config_app = typer.Typer(help="Defaults in ~/.rh/config.yaml (never secrets).", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("list")
@friendly
def config_list() -> None:
    """Every key, its value in force, and where it comes from."""
    table = Table(title=str(configs.path()))
    for col in ("key", "value", "from"):
        table.add_column(col)
    sources = configs.sources()
    for key, value in configs.all().items():
        table.add_row(key, json.dumps(value), sources[key])
    _show(table)


@config_app.command("get")
@friendly
def config_get(key: str = typer.Argument(...)) -> None:
    """Print one key's value in force (JSON)."""
    typer.echo(json.dumps(user_config.value(key)))


@config_app.command("set")
@friendly
def config_set(key: str = typer.Argument(...), value: str = typer.Argument(...)) -> None:
    """Set a key in the file (true/false, numbers, text; null for none)."""
    user_config.set_value(key, user_config.parse_text(key, value) if key in user_config.KEYS
                          else value)
    typer.echo(f"{key} = {json.dumps(user_config.file_values()[key])} in {user_config.config_file()}")


@config_app.command("unset")
@friendly
def config_unset(key: str = typer.Argument(...)) -> None:
    """Remove a key from the file (its default is in force again)."""
    gone = user_config.unset_value(key)
    typer.echo(f"{key} {'removed from' if gone else 'was not set in'} {user_config.config_file()}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
