"""Issue #32: no function of the package is longer than 80 lines (split one that grows past it)."""

import ast
from pathlib import Path

import mvd_edge

MAX_LINES = 80


def test_no_function_of_the_package_is_longer_than_80_lines():
    root = Path(mvd_edge.__file__).parent
    too_long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    too_long.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    assert not too_long, f"functions over {MAX_LINES} lines: " + ", ".join(too_long)
