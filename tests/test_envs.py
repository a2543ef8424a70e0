"""Envs: their own worker processes, variables, working dirs and packages in their own venvs.

Package tests install for real with pip (from local folders, a local git repository, and one
small package from the package index).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import textwrap

import pytest
import userfns

import rh_core as rh


def _project(root, name, version="1.0"):
    """A tiny installable project (pyproject + one module)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "{version}"
        [tool.setuptools]
        py-modules = ["{name}"]
    """))
    (root / f"{name}.py").write_text(f"__version__ = {version!r}\n")
    return root


def test_env_vars_and_separate_process(local):
    env = rh.env(name="with_vars", env_vars={"RH_TEST_VAR": "hello"})
    getenv = rh.function(userfns.getenv).to(local, env=env)
    assert getenv("RH_TEST_VAR") == "hello"
    assert rh.function(userfns.getenv).to(local, name="getenv_base")("RH_TEST_VAR") is None
    pid_env = rh.function(userfns.pid).to(local, env=env, name="pid_in_vars")()
    pid_base = rh.function(userfns.pid).to(local)()
    assert pid_env != pid_base


def test_env_var_change_restarts_its_workers(local):
    f = rh.function(userfns.getenv).to(local, env=rh.env(name="changing", env_vars={"V": "1"}))
    assert f("V") == "1"
    f = rh.function(userfns.getenv).to(local, env=rh.env(name="changing", env_vars={"V": "2"}))
    assert f("V") == "2"


def test_working_dir(local, tmp_path):
    wd = tmp_path / "wd"
    f = rh.function(userfns.cwd).to(local, env=rh.env(name="wd", working_dir=str(wd)))
    assert f() == str(wd)


def test_plain_local_folder_is_put_on_the_env_path(local, tmp_path):
    folder = tmp_path / "plainlib"
    folder.mkdir()
    (folder / "rh_plain_mod.py").write_text("__version__ = 'plain'\n")
    env = rh.env(name="plain", reqs=[f"local:{folder}"])
    version_of = rh.function(userfns.version_of).to(local, env=env)
    assert version_of("rh_plain_mod")[0] == "plain"
    has = rh.function(userfns.has_module).to(local, name="has_plain_base")
    assert has("rh_plain_mod") is False  # not in the base env
    assert importlib.util.find_spec("rh_plain_mod") is None  # nor in the user's own Python


def test_local_project_is_installed_into_its_own_venv(local, tmp_path):
    proj = _project(tmp_path / "proj", "rh_local_proj", "2.5")
    env = rh.env(name="localproj", reqs=[f"local:{proj}"])
    version, path = rh.function(userfns.version_of).to(local, env=env)("rh_local_proj")
    assert version == "2.5" and "/envs/" in path
    assert rh.function(userfns.has_module).to(local, name="has_lp_base")("rh_local_proj") is False
    assert importlib.util.find_spec("rh_local_proj") is None


def test_git_package_at_a_revision(local, tmp_path):
    repo = _project(tmp_path / "gitproj", "rh_git_proj", "1.0")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    rev = subprocess.run([*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    (repo / "rh_git_proj.py").write_text("__version__ = '2.0'\n")
    subprocess.run([*git, "commit", "-qam", "v2"], check=True)
    env = rh.env(name="gitenv", reqs=[f"git+file://{repo}@{rev}"])
    assert rh.function(userfns.version_of).to(local, env=env)("rh_git_proj")[0] == "1.0"


def _tagged_repo(tmp_path, name):
    """A git repository of a tiny project: tag v1.0 holds version 1.0, the branch 2.0."""
    repo = _project(tmp_path / name, name, "1.0")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    subprocess.run([*git, "tag", "v1.0"], check=True)
    (repo / f"{name}.py").write_text("__version__ = '2.0'\n")
    subprocess.run([*git, "commit", "-qam", "v2"], check=True)
    return repo


def test_git_package_as_runhouse_wrote_it(local, tmp_path):
    repo = _tagged_repo(tmp_path, "rh_gitpkg_proj")
    package = rh.GitPackage(git_url=f"file://{repo}", install_method="pip", revision="v1.0")
    assert str(package) == f"git:file://{repo}@v1.0"
    env = rh.env(name="gitpkg", reqs=[package])
    assert env.reqs == [f"git:file://{repo}@v1.0"]
    assert rh.function(userfns.version_of).to(local, env=env)("rh_gitpkg_proj")[0] == "1.0"


def test_git_package_install_method_is_checked():
    with pytest.raises(rh.ConfigError, match="install_method 'conda' is not supported for a "
                                             "GitPackage: the git installer installs it with pip"):
        rh.GitPackage(git_url="https://example.invalid/x.git", install_method="conda")
    with pytest.raises(rh.ConfigError, match="a GitPackage needs git_url"):
        rh.GitPackage(git_url="")


def test_env_vars_from_a_dotenv_file(local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(textwrap.dedent("""\
        # what the workers need
        export API_URL="https://api.example.com/v1"
        GREETING='hello world'   # quoted, with a comment after it

        EMPTY=
        TOKEN=abc=def
    """))
    env = rh.env(name="dotenv", env_vars=".env")
    getenv = rh.function(userfns.getenv).to(local, env=env)
    assert getenv("API_URL") == "https://api.example.com/v1"
    assert getenv("GREETING") == "hello world"
    assert getenv("EMPTY") == ""
    assert getenv("TOKEN") == "abc=def"

    # The file's values never enter a config; the file is read again when the env is sent.
    env.save("~/dotenv-env")
    assert "abc=def" not in json.dumps(rh.load("~/dotenv-env").config())
    (tmp_path / ".env").write_text("TOKEN=rotated\n")
    getenv = rh.function(userfns.getenv).to(local, env=rh.env("~/dotenv-env"))
    assert getenv("TOKEN") == "rotated"
    assert env.delete_configs() is True


def test_a_missing_dotenv_file_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(rh.ConfigError, match=f"the env_vars file 'prod.env' was not found: "
                                             f"looked for {tmp_path}/prod.env"):
        rh.env(env_vars="prod.env")
    (tmp_path / "bad.env").write_text("A=1\nJUST_A_NAME\n")
    with pytest.raises(rh.ConfigError, match="JUST_A_NAME has no value"):
        rh.env(env_vars="bad.env")


def test_pip_package_and_requirements_file_share_a_cached_venv(local, tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("pyjokes\n")
    base_has = rh.function(userfns.has_module).to(local, name="has_base")
    assert base_has("pyjokes") is False, "precondition: pyjokes must not be in the server's env"
    a = rh.function(userfns.has_module).to(local, name="has_a",
                                           env=rh.env(name="pip_a", reqs=["pyjokes"]))
    assert a("pyjokes") is True
    b = rh.function(userfns.has_module).to(local, name="has_b",
                                           env=rh.env(name="pip_b", reqs=["pyjokes"]))
    assert b("pyjokes") is True
    envs = local.status()["envs"]
    assert envs["pip_a"]["python"] == envs["pip_b"]["python"]  # built once, cached by content
    c = rh.function(userfns.has_module).to(local, name="has_c",
                                           env=rh.env(name="reqs", reqs=[f"reqs:{reqs}"]))
    assert c("pyjokes") is True
    assert base_has("pyjokes") is False
    assert importlib.util.find_spec("pyjokes") is None


def test_failing_install_shows_pip_output_and_leaves_nothing(local, rh_home):
    before = set((rh_home / "envs").glob("*")) if (rh_home / "envs").exists() else set()
    env = rh.env(name="broken", reqs=["rh-no-such-package-zzz-404"])
    with pytest.raises(rh.PackageInstallError, match="(?s)rh-no-such-package-zzz-404.*pip said"):
        rh.function(userfns.add).to(local, env=env)
    after = {p for p in (rh_home / "envs").glob("*") if p.is_dir()}
    assert {p for p in after if p not in before} == set()  # no half-built venv left


def test_conda_says_it_is_not_present(local):
    env = rh.env(name="condaenv", reqs=["conda:numpy"])
    with pytest.raises(rh.PackageInstallError, match="conda is not present on the cluster"):
        rh.function(userfns.add).to(local, env=env)


def test_bad_package_spec_is_refused_early():
    with pytest.raises(rh.ConfigError, match="non-empty string"):
        rh.env(reqs=[""])


def test_a_full_disk_says_so_and_leaves_no_half_built_env(local, rh_home, tmp_path):
    """A 4 MB tmpfs over the server's env folder (needs root to mount, as CI has)."""
    import os

    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs and needs root (CI runs as root)",
                    pytrace=False)
    proj = _project(tmp_path / "bigproj", "rh_big_proj", "1.0")
    with open(proj / "rh_big_proj.py", "a") as f:  # 10 MB: more than the disk holds
        f.write(("# " + "x" * 1022 + "\n") * 10240)
    envs = rh_home / "envs"
    envs.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(envs)], check=True)
    try:
        env = rh.env(name="bigenv", reqs=[f"local:{proj}"])
        with pytest.raises(rh.PackageInstallError, match=r"the disk holding .*envs/\w+ is full "
                                                          r"\(\d+ MB free\)"):
            rh.function(userfns.version_of).to(local, env=env)
        left = [p.name for p in envs.iterdir() if p.suffix != ".lock"]
        assert left == []  # no half-built venv left behind
    finally:
        subprocess.run(["umount", str(envs)], check=True)
