"""The README and docs/ as a fresh clone sees them: every link resolves inside the repository.

A relative link must name a file or folder of the repository (tracked, or new and not ignored),
a link must not leave the repository (absolute paths, ``../`` past the root, ``file:``), and an
``#anchor`` into a Markdown file must name one of its headings (GitHub's rule). The README stays
a guide: at most ``README_MAX_LINES`` lines, its test command the one CI runs, its examples valid
command lines of today's CLI, and every command has its section in docs/cli.md.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import unquote

import click
import pytest
from typer.main import get_command

from mvd_edge.cli import app

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300

# [text](target) and ![alt](target), an optional "title" after the target; [text] may hold one [nested] pair
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)=["']([^"']*)["']""", re.I)  # raw HTML links and images
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")  # [label]: target
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_WEB = ("http://", "https://", "mailto:")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks: links and headings in code are not."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opener = _FENCE.match(line)
        if opener:
            fence = None if fence == opener.group(1) else (fence or opener.group(1))
            continue
        if fence is None:
            lines.append((number, line))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image, reference definition and HTML a/img."""
    found = []
    for number, line in _prose_lines(text):
        line = _CODE_SPAN.sub("", line)
        found += [(number, m.group(1)) for m in _INLINE.finditer(line)]
        found += [(number, m.group(1)) for m in _HTML.finditer(line)]
        ref = _REFERENCE.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: rendered text, lowercased, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "-_ ")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in _prose_lines(text):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def repository_paths(root: Path) -> set[str] | None:
    """Files a fresh clone would have (tracked, plus new files git does not ignore); None outside git."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = {p for p in out.decode().split("\0") if p}
    return {p for p in files if (root / p).exists()}  # a tracked file deleted in this checkout is gone


def _exists(rel: str, root: Path, known: set[str] | None) -> bool:
    if known is None:
        return (root / rel).exists()
    return rel in ("", ".") or rel in known or any(p.startswith(rel.rstrip("/") + "/") for p in known)


def check(root: Path, md_files: list[Path], known: set[str] | None) -> list[str]:
    """One line per broken link in md_files (paths under root); [] when all resolve."""
    root = root.resolve()
    problems = []
    for md in md_files:
        text = md.read_text(encoding="utf-8")
        where = md.resolve().relative_to(root).as_posix()
        for number, target in links(text):
            at = f"{where}:{number}: {target!r}"
            if target.startswith(_WEB):
                continue
            if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):
                problems.append(f"{at} leaves the repository (scheme)")
                continue
            path, _, anchor = target.partition("#")
            path = unquote(path)
            if path.startswith(("/", "\\", "~")):
                problems.append(f"{at} leaves the repository (absolute path)")
                continue
            dest = (md.parent / path).resolve() if path else md.resolve()
            try:
                rel = dest.relative_to(root).as_posix()
            except ValueError:
                problems.append(f"{at} leaves the repository")
                continue
            if rel == ".":
                rel = ""
            if not _exists(rel, root, known):
                problems.append(f"{at} names no file of the repository")
            elif anchor and dest.suffix == ".md" and dest.is_file():
                if anchor not in anchors(dest.read_text(encoding="utf-8")):
                    problems.append(f"{at}: no heading #{anchor} in {rel}")
    return problems


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


# ----------------------------------------------------------------------------- the repository


def test_every_link_in_readme_and_docs_resolves_inside_the_repository():
    problems = check(ROOT, _docs(), repository_paths(ROOT))
    assert problems == [], "\n".join(problems)


def test_readme_is_a_short_guide():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}); move detail into docs/"


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[next(i for i, line in enumerate(ci) if "Quick start" in line) + 1].strip()
    assert command.startswith("python3 -m pip install -e")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert command in [line.strip() for line in readme.splitlines()], "README's test command differs from .ci/run's"


def test_readme_examples_parse_with_todays_cli():
    """Each `mvd-edge ...` line of the README's bash blocks names a command and options that exist."""
    group = get_command(app)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line.split("  #")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    examples = [shlex.split(line)[1:] for line in lines if line.startswith("mvd-edge ")]
    assert len(examples) >= 15  # one per stage at least
    for args in examples:
        cmd, rest = group.commands[args[0]], args[1:]
        if isinstance(cmd, click.Group):
            cmd, rest = cmd.commands[rest[0]], rest[1:]
        cmd.make_context(args[0], rest)  # raises on an unknown option or a bad value


def test_every_command_has_its_section_in_the_cli_reference():
    group = get_command(app)
    names = []
    for name, cmd in group.commands.items():
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    headings = [m.group(2) for _, line in _prose_lines((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
                if (m := _HEADING.match(line))]
    missing = [n for n in names if not any(f"mvd-edge {n}" in h.replace("`", "") for h in headings)]
    assert missing == [], f"commands without a heading in docs/cli.md: {missing}"


# ----------------------------------------------------------------------------- the checker itself


def test_slug_follows_githubs_rule():
    assert slug("`mvd-edge match --cameras site.yaml` — a site of N cameras") == "mvd-edge-match---cameras-siteyaml--a-site-of-n-cameras"
    assert slug("What happens when things go wrong") == "what-happens-when-things-go-wrong"
    assert slug("Large galleries on faiss (`mvd-edge gallery`)") == "large-galleries-on-faiss-mvd-edge-gallery"
    assert slug("snake_case & [a link](x.md)") == "snake_case--a-link"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Two words\n\n## Two words\n\n## `cmd --flag` — what\n")
    (tmp_path / "docs" / "sub" / "data.json").write_text("{}")
    return tmp_path


def _check_one(repo: Path, body: str) -> list[str]:
    (repo / "README.md").write_text(body)
    return check(repo, [repo / "README.md"], None)


@pytest.mark.parametrize("body", [
    "[guide](docs/guide.md) ![img](docs/sub/data.json) [folder](docs/sub/) [web](https://example.org/x)",
    "[anchor](docs/guide.md#two-words) [second](docs/guide.md#two-words-1) [here](#top)\n\n# Top\n",
    "[code in the heading](docs/guide.md#cmd---flag--what)",
    "[ref]: docs/guide.md",
    '<img src="docs/sub/data.json"> [spaced](docs/sub/data%2Ejson)',
    "```\n[in code](missing.md)\n```\nand `[span](missing.md)`",
])
def test_checker_accepts_links_that_resolve(repo, body):
    assert _check_one(repo, body) == []


@pytest.mark.parametrize("body, why", [
    ("see [gone](docs/gone.md)", "names no file"),
    ("![img](docs/sub/missing.png)", "names no file"),
    ("[design](../shared/DESIGN.md)", "leaves the repository"),
    ("[abs](/work/shared/DESIGN.md)", "absolute path"),
    ("[file](file:///etc/passwd)", "scheme"),
    ("[anchor](docs/guide.md#no-such-heading)", "no heading #no-such-heading"),
    ("[anchor](#nowhere)\n\n# Somewhere\n", "no heading #nowhere"),
    ("[ref]: docs/gone.md", "names no file"),
    ('<a href="docs/gone.md">gone</a>', "names no file"),
])
def test_checker_reports_a_broken_link(repo, body, why):
    problems = _check_one(repo, body)
    assert len(problems) == 1 and why in problems[0], problems


def test_checker_uses_the_repository_listing_not_the_disk(repo):
    (repo / "README.md").write_text("[local only](docs/sub/data.json)")
    assert check(repo, [repo / "README.md"], {"README.md", "docs/guide.md"}) != []  # on disk, not in the clone
    assert check(repo, [repo / "README.md"], {"README.md", "docs/sub/data.json"}) == []
