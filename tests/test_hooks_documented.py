"""Guard tests: every hook is documented with its signature, and every hook has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from rh_core.plugin import hookspecs

ROOT = Path(__file__).parent.parent
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("rh_"))


def _signature_line(name: str) -> str:
    src = inspect.getsource(getattr(hookspecs, name))
    head = src[src.index("def "):src.index(":\n", src.index(")"))]
    return re.sub(r"\s+", " ", head).replace("( ", "(").replace(", )", ")").replace(" )", ")") + ":"


def test_there_are_hooks():
    assert len(HOOKS) == 8


@pytest.mark.parametrize("name", HOOKS)
def test_hook_documented_with_signature(name):
    docs = re.sub(r"\s+", " ", (ROOT / "docs" / "plugin_hooks.md").read_text())
    assert _signature_line(name) in docs, f"docs/plugin_hooks.md lacks {_signature_line(name)}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name):
    tests = (ROOT / "tests" / "test_plugins.py").read_text()
    assert f"def test_hook_{name}(" in tests
