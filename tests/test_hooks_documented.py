"""Guard tests: every hook is documented with its signature, and every hook has a test.

The hooks are read from the spec module itself (every function carrying pluggy's hookspec
marker), so a new hook is guarded the moment it is declared.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from rh_core.plugin import hookspecs
from rh_core.plugin.registry import get_plugin_manager

ROOT = Path(__file__).parent.parent
SPEC_ATTR = f"{hookspecs.hookspec.project_name}_spec"  # what pluggy's marker sets on a spec
HOOKS = sorted(name for name, obj in vars(hookspecs).items()
               if inspect.isfunction(obj) and hasattr(obj, SPEC_ATTR))


def _signature_line(name: str) -> str:
    src = inspect.getsource(getattr(hookspecs, name))
    head = src[src.index("def "):src.index(":\n", src.index(")"))]
    return re.sub(r"\s+", " ", head).replace("( ", "(").replace(", )", ")").replace(" )", ")") + ":"


def test_the_plugin_manager_knows_exactly_the_declared_hooks():
    assert HOOKS, f"no function in {hookspecs.__name__} carries the hookspec marker"
    pm = get_plugin_manager(autoload=False)
    known = sorted(name for name, caller in vars(pm.hook).items()
                   if isinstance(caller, pluggy.HookCaller) and caller.has_spec())
    assert known == HOOKS


def test_every_function_of_the_spec_module_is_a_hook_named_rh():
    functions = sorted(name for name, obj in vars(hookspecs).items()
                       if inspect.isfunction(obj) and obj.__module__ == hookspecs.__name__)
    assert functions == HOOKS, "a function in the spec module lacks @hookspec"
    assert [name for name in HOOKS if not name.startswith("rh_")] == []


def test_docs_describe_no_hook_that_does_not_exist():
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    documented = set(re.findall(r"^def (rh_\w+)\(", docs, flags=re.M))
    assert documented == set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_documented_with_signature(name):
    docs = re.sub(r"\s+", " ", (ROOT / "docs" / "plugin_hooks.md").read_text())
    assert _signature_line(name) in docs, f"docs/plugin_hooks.md lacks {_signature_line(name)}"


@pytest.mark.parametrize("name", HOOKS)
def test_firstresult_hooks_say_so(name):
    spec = getattr(getattr(hookspecs, name), SPEC_ATTR)
    doc = " ".join(inspect.getdoc(getattr(hookspecs, name)).split())
    assert spec["firstresult"] == ("Stops at the first non-None result." in doc)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name):
    tests = (ROOT / "tests" / "test_plugins.py").read_text()
    assert f"def test_hook_{name}(" in tests
