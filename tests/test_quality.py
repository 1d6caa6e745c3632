"""ruff (lint, format, banned imports) and mypy --strict on src/ and tests/, and the layout's limits."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SRC = ROOT / "src" / "easel"


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "src", "tests", "bench"],
        ["ruff", "format", "--check", "src", "tests", "bench"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_clean(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_tree_stays_readable() -> None:
    """At most 12 top-level modules, none over 450 lines, thin image routes, and every module
    opening with the docstring that says its job (README, "How it is built")."""
    assert len(list(SRC.glob("*.py"))) <= 12, sorted(p.name for p in SRC.glob("*.py"))
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= 450, f"{path.relative_to(SRC)} has {text.count(chr(10))} lines"
        docstring = ast.get_docstring(ast.parse(text)) or ""
        assert docstring.strip(), f"{path.relative_to(SRC)} opens with no docstring saying what it does"
    assert (SRC / "api" / "images.py").read_text().count("\n") < 90
