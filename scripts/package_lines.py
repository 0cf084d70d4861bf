"""Lines of the mvd_edge package at git commits: all lines (what `wc -l` counts) and code lines (no blank,
comment or docstring line). Issue #32's size criterion is counted with it.

    python scripts/package_lines.py [--repo REPO] [COMMIT ...]      # default: the current repository, HEAD
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tokenize

_NOT_CODE = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


def docstring_lines(src: str) -> set[int]:
    """Line numbers of every module, class and function docstring."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(src: str) -> int:
    """Lines holding a token other than a comment or a docstring."""
    has_code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in _NOT_CODE:
            has_code.update(range(tok.start[0], tok.end[0] + 1))
    return len(has_code - docstring_lines(src))


def count(repo: str, commit: str) -> tuple[int, int]:
    """(all lines, code lines) of the package's .py files at ``commit``."""
    files = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "--name-only", commit, "mvd_edge"],
                           capture_output=True, text=True, check=True).stdout.split()
    total = code = 0
    for name in (f for f in files if f.endswith(".py")):
        src = subprocess.run(["git", "-C", repo, "show", f"{commit}:{name}"],
                             capture_output=True, text=True, check=True).stdout
        total += len(src.splitlines())
        code += code_lines(src)
    return total, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*", default=["HEAD"])
    parser.add_argument("--repo", default=".")
    args = parser.parse_args()
    print("| commit | all lines | code lines |\n|---|---|---|")
    for commit in args.commits:
        try:
            total, code = count(args.repo, commit)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"package_lines: {commit}: {exc.stderr.strip() or 'not a commit of ' + args.repo}") from None
        print(f"| {commit} | {total:,} | {code:,} |")


if __name__ == "__main__":
    main()
