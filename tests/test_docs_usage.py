"""Every Python example of the user guide, docs/usage.md, runs as a test, so the page cannot drift.

The ```python blocks run in page order, in one namespace (a script named ``__main__``, as a user's
would be), against a real local cluster in an rh home of their own: the page serves its own
``concat`` and ``Counter``, and starts and stops clusters, without touching the session's
``local``. A line whose comment starts with a Python literal states the value of its expression,
and is checked: ``remote_concat("run", "house")   # "runhouse", computed ...`` must give exactly
``"runhouse"`` (same type, equal value). A block preceded by ``<!-- not run: REASON -->`` is
not run, and is reported as a warning naming it.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import tokenize
import warnings
from pathlib import Path

import attrs
import pytest

import rh_core as rh
from rh_core.testing import private_home

PAGE = Path(__file__).parent.parent / "docs" / "usage.md"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->$")


@attrs.frozen
class Block:
    """One ```python block of a page."""

    line: int  #: page line of its first line of code
    section: str
    source: str
    not_run: str | None  #: why it is not run, from a `<!-- not run: ... -->` line before it

    @property
    def id(self) -> str:
        return f"L{self.line}-{re.sub(r'[^a-z0-9]+', '-', self.section.lower()).strip('-')}"


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown page, in order."""
    blocks, lines = [], text.splitlines()
    section, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.strip() == "```python":
            previous = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
            marker = NOT_RUN.match(previous)
            end = lines.index("```", i + 1)
            blocks.append(Block(i + 2, section, "\n".join(lines[i + 1:end]) + "\n",
                                marker.group(1) if marker else None))
            i = end
        i += 1
    return blocks


def literal_prefix(comment: str) -> tuple[bool, object]:
    """``(True, value)`` when the comment starts with a Python literal: the longest prefix, cut
    before a ',', ';' or ':' or at the end, that parses as one (``"runhouse", computed by ...``
    gives ``"runhouse"``); ``(False, None)`` for a comment in words."""
    cuts = [i for i, c in enumerate(comment) if c in ",;:"] + [len(comment)]
    for cut in sorted(cuts, reverse=True):
        head = comment[:cut].strip()
        if not head or head.endswith(","):
            continue
        try:
            return True, ast.literal_eval(head)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return False, None


def stated_values(source: str, first_line: int) -> dict[int, object]:
    """Page line -> the value its comment states, for lines with code before the comment."""
    values = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.line[:tok.start[1]].strip():
            is_value, value = literal_prefix(tok.string[1:].strip())
            if is_value:
                values[first_line + tok.start[0] - 1] = value
    return values


class _CheckStatedValues(ast.NodeTransformer):
    """Wraps the given expression statements in ``__check__(expr, line)``."""

    def __init__(self, statements: list[ast.Expr]):
        self.ids = {id(node) for node in statements}

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if id(node) in self.ids:
            call = ast.Call(ast.Name("__check__", ast.Load()),
                            [node.value, ast.Constant(node.end_lineno)], [])
            return ast.copy_location(ast.Expr(call), node)
        return node


def compile_block(block: Block, values: dict[int, object]):
    """The block's code, with page line numbers (so a traceback points into docs/usage.md) and
    a check of every stated value."""
    tree = ast.parse(block.source, filename=str(PAGE))
    ast.increment_lineno(tree, block.line - 1)
    # The last statement on a line is the one whose value the comment states.
    lasts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.end_lineno in values:
            if node.end_lineno not in lasts or node.col_offset > lasts[node.end_lineno].col_offset:
                lasts[node.end_lineno] = node
    not_expr = sorted(line for line, node in lasts.items() if not isinstance(node, ast.Expr))
    missing = sorted(set(values) - set(lasts))
    assert not not_expr and not missing, (
        f"docs/usage.md lines {not_expr + missing} state a value in a comment, but do not end "
        f"an expression whose value it could be")
    checker = _CheckStatedValues(list(lasts.values()))
    tree = ast.fix_missing_locations(checker.visit(tree))
    return compile(tree, str(PAGE), "exec")


BLOCKS = python_blocks(PAGE.read_text())


class Page:
    """The page's namespace and what has run of it so far."""

    def __init__(self):
        self.namespace = {"__name__": "__main__", "__builtins__": builtins,
                          "__check__": self.check}
        self.ran: dict[int, BaseException | None] = {}
        self.values: dict[int, object] = {}  #: page line -> the value its comment states
        self.shown: dict[int, str] = {}  #: page line -> its text
        self.checked: set[int] = set()

    def add(self, block: Block) -> dict[int, object]:
        values = stated_values(block.source, block.line)
        self.values.update(values)
        lines = block.source.splitlines()
        self.shown.update((line, lines[line - block.line].strip()) for line in values)
        return values

    def check(self, value, line: int):
        expected = self.values[line]
        if type(value) is not type(expected) or value != expected:
            raise AssertionError(f"docs/usage.md:{line}: `{self.shown[line]}` gives {value!r}, "
                                 f"the page says {expected!r}")
        self.checked.add(line)
        return value

    def run_through(self, block: Block) -> None:
        """Run every block up to ``block`` that has not run yet, in page order."""
        for earlier in BLOCKS[:BLOCKS.index(block) + 1]:
            if earlier.not_run or self.ran.get(earlier.line, False) is None:
                continue  # not to be run, or ran fine
            if earlier.line in self.ran:
                raise AssertionError(f"the block at docs/usage.md:{earlier.line} failed (see its "
                                     f"test); the blocks after it use what it makes")
            values = self.add(earlier)
            try:
                exec(compile_block(earlier, values), self.namespace)
            except BaseException as e:
                self.ran[earlier.line] = e
                raise
            self.ran[earlier.line] = None


def _down_every_cluster(page: Page, home: Path) -> None:
    """Stop, by their recorded PIDs, the servers the page started in its own rh home: first
    through the page's own cluster objects (which close their connections), then any other."""
    for value in list(page.namespace.values()):
        if isinstance(value, rh.Cluster):
            value.down()
    for record in sorted(home.glob("clusters/*/server.json")):
        rh.cluster(name=record.parent.name, provider="local").down()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("docs-usage-home")) as home:
        rh.set_folder("~")
        page = Page()
        try:
            yield page
        finally:
            rh.set_folder("~")
            _down_every_cluster(page, home)
    assert list(home.glob("clusters/*/server.json")) == []


def test_the_page_has_examples():
    assert len(BLOCKS) >= 10, f"found only {len(BLOCKS)} python blocks in {PAGE}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example(page, block):
    if block.not_run:
        warnings.warn(f"docs/usage.md:{block.line} ({block.section}) is not run: {block.not_run}",
                      stacklevel=1)
        return
    page.run_through(block)


def test_every_stated_value_was_checked(page):
    page.run_through(BLOCKS[-1])
    stated = {line for b in BLOCKS if not b.not_run for line in stated_values(b.source, b.line)}
    assert stated, "the page states no values in comments any more"
    assert page.checked == stated, f"stated but never checked: {sorted(stated - page.checked)}"
    not_run = [f"L{b.line} ({b.section}): {b.not_run}" for b in BLOCKS if b.not_run]
    print(f"docs/usage.md: {len(BLOCKS) - len(not_run)} python blocks run, {len(stated)} values "
          f"checked, {len(not_run)} blocks not run{': ' if not_run else ''}{'; '.join(not_run)}")


# The reading of the page itself, on small pages.

SAMPLE = '''# Title

## Part one

```python
x = 1 + 1
x                     # 2, the sum
x * 10                # 20
f"{x}"                # "2": a string
print("hi")           # prints hi
```

<!-- not run: needs a GPU -->

```python
import torch
```
'''


def test_blocks_sections_and_not_run_markers_are_read():
    first, gpu = python_blocks(SAMPLE)
    assert (first.line, first.section, first.not_run) == (6, "Part one", None)
    assert first.source.startswith("x = 1 + 1\n")
    assert (gpu.line, gpu.not_run, gpu.source) == (16, "needs a GPU", "import torch\n")


def test_stated_values_are_literals_at_the_start_of_a_comment():
    first = python_blocks(SAMPLE)[0]
    assert stated_values(first.source, first.line) == {7: 2, 8: 20, 9: "2"}
    assert literal_prefix('["a!", "b!", "c!"]') == (True, ["a!", "b!", "c!"])
    assert literal_prefix('("0.8.3", "4")') == (True, ("0.8.3", "4"))
    assert literal_prefix("15, read from the cluster") == (True, 15)
    assert literal_prefix("True: the server answers") == (True, True)
    assert literal_prefix("start the server if it is not running") == (False, None)
    assert literal_prefix("or rh.here") == (False, None)


def test_a_wrong_stated_value_fails_with_the_page_line():
    block = Block(7, "Part one", 'len("abc")    # 4\n', None)
    checks = Page()
    code = compile_block(block, checks.add(block))
    with pytest.raises(AssertionError, match=r'^docs/usage.md:7: `len\("abc"\)    # 4` gives 3, '
                                             r'the page says 4$'):
        exec(code, {"__check__": checks.check})
    assert checks.checked == set()
    with pytest.raises(AssertionError, match="line.*7.*do not end an expression"):
        compile_block(Block(7, "", "n = 3    # 3\n", None), {7: 3})
