"""The one YAML reader of mvd-edge: every YAML file or string the project reads goes through it.

:func:`load_yaml` refuses, with a one-line :class:`YamlError` naming the file and line:

- a file larger than :data:`MAX_YAML_BYTES`, before parsing it (configs and cameras files are small);
- anchors and aliases (``&x`` / ``*x``): a few hundred bytes of nested aliases expand to
  gigabytes (the "billion laughs"), and no mvd-edge file needs them;
- a key given twice in one mapping, at any depth: plain YAML keeps the last one and silently
  drops the other (a camera, a whole config section);
- anything :class:`yaml.SafeLoader` already refuses (tags that build objects, syntax errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mvd_edge.core.errors import UsageError

MAX_YAML_BYTES = 1 << 20  # 1 MiB


class YamlError(UsageError):
    """A YAML file or string mvd-edge will not read; the message names the file and line."""


def _line(node_or_mark: Any) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases and without duplicate keys."""

    source = "<yaml>"

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise YamlError(f"{self.source}: line {_line(event)}: YAML alias '*{event.anchor}' is not allowed "
                            "(mvd-edge reads no anchors or aliases: write the values out)")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlError(f"{self.source}: line {_line(event)}: YAML anchor '&{anchor}' is not allowed "
                            "(mvd-edge reads no anchors or aliases: write the values out)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlError(f"{self.source}: line {_line(key_node)}: YAML merge key '<<' is not allowed")
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader refuses it below
                    continue
                if first is not None:
                    raise YamlError(f"{self.source}: line {_line(key_node)}: duplicate key {key!r} (first given on "
                                    f"line {first}); remove one of them")
                seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<yaml>") -> Any:
    """Parse YAML ``text`` strictly (see the module); ``source`` names it in messages."""
    loader = _StrictLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(f"{source}: not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read and parse the YAML file at ``path`` strictly; refuses files above ``max_bytes`` unread."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise YamlError(f"{p}: {size} bytes is too large for a YAML config (at most {max_bytes} bytes)")
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(f"cannot read {p}: {exc}") from None
    return parse_yaml(text, str(p))
