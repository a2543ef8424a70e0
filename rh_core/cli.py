"""The ``rh`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import typer
from rich.table import Table

from rh_core import configs
from rh_core.cli_common import _cluster, _show, _when, friendly
from rh_core.cli_secrets import config_app, secret_app
from rh_core.errors import RhError
from rh_core.names import resolve, shared
from rh_core.plugin.registry import registry

app = typer.Typer(help="rh: run Python on other hardware.", no_args_is_help=True,
                  add_completion=False)


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
        reported = _provider_status(type(cluster.provider), [cluster.short_name])
        beside = f" (its provider reports: {reported.get(cluster.short_name) or 'no such cluster'})" \
            if reported is not None else ""
        typer.echo(f"cluster {name!r} is not up{beside}")
        raise typer.Exit(1)
    typer.echo(json.dumps(cluster.status(), indent=2, default=str))


def _provider_status(provider_cls, names: list[str]) -> dict[str, str] | None:
    """The provider's own status of its clusters ``names`` (``list_status``, a provider's
    optional class method: SkyPilot's UP/STOPPED/INIT for on-demand clusters); None when the
    provider has none."""
    list_status = getattr(provider_cls, "list_status", None)
    return list_status(names) if list_status is not None else None


@app.command("clusters")
@friendly
def clusters_(folder: str = typer.Argument("~", help="a folder of names: ~, ~/proj")) -> None:
    """List the clusters saved under a folder, with their provider's status beside each where
    the provider reports one (SkyPilot's for on-demand clusters)."""
    by_provider: dict[str, list[tuple[str, dict]]] = {}
    for names in resolve.places(folder).values():
        for full in names:
            if full.endswith("/"):
                continue
            config = resolve.load_config(full)
            if config.get("resource_type") == "cluster":
                by_provider.setdefault(config.get("subtype") or "?", []).append((full, config))
    table = Table(title=f"clusters in {folder}")
    for col in ("name", "provider", "what", "status"):
        table.add_column(col)
    for subtype, rows in sorted(by_provider.items()):
        cls = registry().providers.get(subtype)
        short = [full.rsplit("/", 1)[-1].lstrip("~^@") for full, _ in rows]
        try:
            reported = _provider_status(cls, short) if cls is not None else None
        except RhError as e:  # the other providers' clusters are still worth listing
            typer.echo(f"warning: no status from provider {subtype!r}: {e}", err=True)
            reported = dict.fromkeys(short, "?")
        for (full, config), name in zip(rows, short, strict=True):
            what = config.get("instance_type") or ", ".join(config.get("ips") or []) or "-"
            if config.get("cloud"):
                what += f" on {config['cloud']}"
            status = "-" if reported is None else reported.get(name, "not launched")
            table.add_row(full, subtype if cls else f"{subtype} (not installed)", what, status)
    _show(table)


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
def login(url: str = typer.Argument(..., help="the shared store's address, e.g. "
                                              "https://den.example.com"),
          token: str = typer.Option(None, "--token", help="your token; '-' reads it from "
                                    "standard input; asked for (not echoed) when omitted"),
          upload: bool = typer.Option(False, "--upload", help="also offer to upload your "
                                      "defaults and the credentials found on this machine")) -> None:
    """Log in to a shared store (``@/...`` names): the token is kept in the secret backend."""
    if token == "-":
        token = typer.get_text_stream("stdin").readline().strip()
    elif token is None:
        token = typer.prompt("token", hide_input=True)
    done = configs.login(url, token, interactive=upload)
    typer.echo(f"logged in to {done['url']} as {done['user']}; bare names now go to "
               f"@/{done['user']}")
    for what in ([done["defaults"]] if done["defaults"] else []) + done["secrets"]:
        typer.echo(f"uploaded {what}")


@app.command()
@friendly
def logout() -> None:
    """Forget the shared store's token on this machine."""
    shared.logout()
    typer.echo("logged out")


@app.command()
@friendly
def whoami() -> None:
    """The user logged in to the shared store."""
    user = shared.whoami()
    if user is None:
        typer.echo("not logged in (rh login URL --token TOKEN)", err=True)
        raise typer.Exit(1)
    typer.echo(user)


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


app.add_typer(secret_app, name="secret")
app.add_typer(config_app, name="config")
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


@token_app.command("revoke")
@friendly
def token_revoke(who: str = typer.Argument(..., help="a user, or a token id"),
                 cluster: str = typer.Option("local", "--cluster", "-c")) -> None:
    """Revoke a user's tokens (or one token by id)."""
    typer.echo(f"revoked: {', '.join(_cluster(cluster).revoke(who))}")


def _plugin_commands() -> None:
    """Command groups of installed plugins (``rh den ...``), after the core's own."""
    taken = {c.name or c.callback.__name__ for c in app.registered_commands}
    taken |= {g.name for g in app.registered_groups}
    for name, group in registry().cli_commands.items():
        if name in taken:
            typer.echo(f"warning: a plugin's command group {name!r} is not added: rh has a "
                       f"command of that name", err=True)
            continue
        app.add_typer(group, name=name)


_plugin_commands()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
