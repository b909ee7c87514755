"""docs/RELIABILITY.md is kept true by the tests: every test it names exists, none is left out."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "RELIABILITY.md"
RELIABILITY = ROOT / "tests" / "reliability"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
HEADER = ["Fault or input", "What Onair promises", "What the test observed", "Test"]


def table_rows() -> list[list[str]]:
    """The body rows of every fault table (the tables whose header is HEADER)."""
    rows: list[list[str]] = []
    header: list[str] | None = None
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = None  # a table ends at the first line that is not a row
            continue
        if set(line) <= {"|", "-", " "}:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if header is None:
            header = cells
        elif header == HEADER:
            rows.append(cells)
    return rows


def defined_tests(path: Path) -> set[str]:
    """Names of the module-level test functions in a test file."""
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_row_has_four_cells_and_names_its_test() -> None:
    rows = table_rows()
    assert len(rows) >= 30
    for cells in rows:
        assert len(cells) == 4, cells
        assert all(cells), cells
        assert REFERENCE.search(cells[3]) or cells[3] == "—", cells


def test_every_named_test_exists() -> None:
    named = [m.groups() for cells in table_rows() for m in REFERENCE.finditer(cells[3])]
    assert named
    for file, function in named:
        path = ROOT / file
        assert path.is_file(), f"{file} does not exist"
        assert function in defined_tests(path), f"{file}::{function} does not exist"


def test_every_reliability_test_is_in_the_table() -> None:
    named = {m.groups() for cells in table_rows() for m in REFERENCE.finditer(cells[3])}
    files = sorted(RELIABILITY.glob("test_*.py"))
    assert files
    for path in files:
        file = path.relative_to(ROOT).as_posix()
        for function in sorted(defined_tests(path)):
            assert (file, function) in named, f"{file}::{function} is missing from {DOC.name}"
