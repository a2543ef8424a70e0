"""Resource configs, names and the local store."""

from __future__ import annotations

import json

import pytest
import userfns

import rh_core as rh
from rh_core.resources import Resource


@pytest.fixture(autouse=True)
def _fresh_folder():
    rh.set_folder("~")
    yield
    rh.set_folder("~")


def test_configs_round_trip_for_every_resource(local):
    f = rh.function(userfns.concat).to(local, env=rh.env(name="rt", env_vars={"A": "1"}))
    m = rh.module(userfns.Counter)
    resources = [local, f, m, rh.env(name="e", reqs=["numpy"], processes=2), rh.package("local:./x")]
    for r in resources:
        config = r.config()
        json.dumps(config)  # plain JSON
        again = Resource.from_config(config)
        assert type(again) is type(r)
        assert again.config() == config


def test_bad_config_key_names_it_and_lists_known():
    config = rh.env(name="x").config()
    config["reqz"] = ["numpy"]
    with pytest.raises(rh.ConfigError, match=r"unknown key\(s\) \['reqz'\]; known keys: .*'reqs'"):
        Resource.from_config(config)


def test_bad_config_value_is_a_config_error():
    config = rh.cluster("local").config()
    config["server_port"] = 70000
    with pytest.raises(rh.ConfigError, match="server_port must be between 1 and 65535"):
        Resource.from_config(config)


def test_unknown_provider_lists_installed():
    with pytest.raises(rh.UnknownPluginItemError, match=r"unknown compute provider 'nope'; .*local"):
        rh.cluster(name="x", provider="nope")
    config = {"resource_type": "cluster", "subtype": "nope2", "name": "y"}
    with pytest.raises(rh.UnknownPluginItemError, match="installed compute providers: .*local"):
        Resource.from_config(config)


def test_unknown_connection_type_lists_installed():
    c = rh.cluster(name="conn-test", provider="local", server_connection_type="carrier-pigeon")
    expected = "unknown connection type 'carrier-pigeon'; installed connection types: none, .*tls"
    with pytest.raises(rh.UnknownPluginItemError, match=expected):
        c.client()
    assert not c.is_up()  # refused before anything was started


def test_unknown_installer_prefix_goes_to_pip_but_known_ones_parse():
    assert rh.package("numpy==2.0").installer == "pip"
    assert rh.package("reqs:requirements.txt").installer == "reqs"
    assert rh.package("git+https://example.invalid/x.git@v1").installer == "git"
    assert rh.package("conda:numpy").installer == "conda"
    assert str(rh.package("local:./pkg")) == "local:./pkg"
    assert rh.package("pkg @ https://example.invalid/pkg.whl").installer == "pip"
    with pytest.raises(rh.UnknownPluginItemError,
                       match="unknown package installer 'poetry'; installed package installers: "
                             "conda, git, local, pip, reqs"):
        rh.package("poetry:requests")


def test_save_load_exists(local):
    f = rh.function(userfns.concat).to(local)
    f.save("~/tools/concat")
    assert rh.exists("~/tools/concat")
    loaded = rh.function(name="~/tools/concat")
    assert loaded("a", "b") == "ab"
    assert rh.load("~/tools/concat").config() == f.config()
    assert not rh.exists("~/tools/nothing")
    with pytest.raises(rh.ResourceNotFoundError, match="no resource saved as '~/tools/nothing'"):
        rh.load("~/tools/nothing")


def test_saved_cluster_loads_by_name(rh_home):
    c = rh.cluster(name="mine", provider="local", server_port=40123)
    c.save("~/mine")
    again = rh.cluster(name="~/mine")
    assert again.server_port == 40123 and again.subtype == "local"
    assert json.loads((rh_home / "rns" / "mine.json").read_text())["subtype"] == "local"


def test_unknown_cluster_name_says_what_to_do():
    with pytest.raises(rh.ResourceNotFoundError, match="unknown cluster 'ghost'.*rh.cluster\\('local'\\)"):
        rh.cluster("ghost")


def test_current_folder_and_relative_names():
    assert rh.current_folder() == "~"
    rh.set_folder("~/team")
    assert rh.current_folder() == "~/team"
    rh.env(name="shared-env", reqs=["numpy"]).save("shared-env")
    assert rh.exists("~/team/shared-env")
    assert rh.env(name="shared-env").reqs == ["numpy"]


def test_builtin_store_has_the_local_cluster():
    c = rh.load("^local")
    assert c.subtype == "local"
    with pytest.raises(rh.ConfigError, match="read-only"):
        rh.env(name="x").save("^x")


def test_bad_names_are_refused():
    with pytest.raises(rh.ConfigError, match="bad resource name"):
        rh.exists("~/../etc/passwd")


def test_function_needs_a_callable():
    with pytest.raises(rh.ConfigError, match="takes a function"):
        rh.function(42)
    with pytest.raises(rh.ConfigError, match="not on a cluster yet"):
        rh.function(userfns.add)(1, 2)


def test_delete_configs_removes_the_saved_config():
    env = rh.env(name="to-forget", reqs=["numpy"]).save("~/to-forget")
    assert rh.exists("~/to-forget")
    assert env.delete_configs() is True
    assert not rh.exists("~/to-forget")
    assert env.delete_configs() is False  # nothing left to delete


@pytest.mark.parametrize("make", [
    "rh.blob(data=b'x', name='kept')",
    "rh.env(name='kept', env_vars={'A': '1'})",
    "rh.folder(path='/tmp', name='kept')",
])
def test_a_saved_resource_loads_in_a_process_that_never_used_its_kind(rh_home, make):
    """``import rh_core`` loads each name on first use: a process whose first act is
    ``rh.load`` still knows every kind of the core (the converter imports them by name)."""
    import subprocess
    import sys

    made = eval(make, {"rh": rh})  # noqa: S307 - the test's own expressions
    made.save("~/kept")
    code = ("import rh_core as rh; r = rh.load('~/kept'); "
            "print(r.resource_type, r.config() == __import__('json').loads(__import__('sys').argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(made.config())],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [made.resource_type, "True"]


def test_every_name_of_rh_resolves_and_rh_resources_stays_the_function():
    """Each ``rh.<name>`` loads on first use; once the subpackage ``rh_core.resources`` is
    imported, ``rh.resources`` is still the function listing a folder (checked in a new
    process, where nothing was loaded yet)."""
    import subprocess
    import sys

    code = ("import rh_core as rh\n"
            "assert rh.resources.__module__ == 'rh_core.names.shared', rh.resources\n"
            "missing = [n for n in rh.__all__ if getattr(rh, n, None) is None]\n"
            "import rh_core.resources.data\n"
            "print(missing, rh.resources.__module__, callable(rh.function))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "rh_core.names.shared", "True"]


def test_rh_itself_pickles_as_the_module_to_import():
    """A function sent by value that refers to ``rh`` carries the module by name (the package's
    own module class must not make it unpicklable)."""
    import pickle

    import cloudpickle

    assert cloudpickle.loads(cloudpickle.dumps(rh)) is rh
    assert pickle.loads(pickle.dumps(rh)) is rh
