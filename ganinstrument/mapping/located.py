"""YAML read the way `yaml.safe_load` reads it, but every mapping and list remembers its lines.

The schema reports each problem as `file:line`, so the loader keeps, for every dict and list,
the line it starts on and the line of each key or item. Scalars are built by PyYAML's own
SafeConstructor, so `yes`, `0x10`, `1e3` and `null` mean exactly what `safe_load` makes of
them. Duplicate keys (which `safe_load` silently resolves to the last) are recorded so the
schema can report them. The text is composed by yamlsafe's LimitedLoader: no aliases (so no
recursive ones either), bounded depth.
"""

from __future__ import annotations

import yaml

from ..common.yamlsafe import YamlError, compose, construct

__all__ = ["LDict", "LList", "YamlSyntaxError", "load_located", "line_of"]


YamlSyntaxError = YamlError  # the text is not YAML, or breaks a limit; `line` is 1-based


class LDict(dict):
    """A dict with `line` (where it starts), `key_lines[key]` and `duplicates` [(key, line)]."""

    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict = {}
        self.duplicates: list[tuple[object, int]] = []

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class LList(list):
    """A list with `line` (where it starts) and `item_lines[i]`."""

    line: int = 0

    def __init__(self, *args):
        super().__init__(*args)
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def line_of(value, default: int = 0) -> int:
    """The line a located value starts on (`default` for plain scalars)."""
    return getattr(value, "line", default) or default


def load_located(text: str):
    """Parse `text` as one YAML document into LDict / LList / scalars; None for an empty file.

    Read with the limits of yamlsafe (no aliases, bounded depth). Raises YamlSyntaxError with
    the 1-based line of the first problem.
    """
    node, loader = compose(text)
    try:
        return None if node is None else _build(node, loader)
    finally:
        loader.dispose()


def _build(node, loader):
    line = node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode):
        out = LList()
        out.line = line
        for item in node.value:
            out.append(_build(item, loader))
            out.item_lines.append(item.start_mark.line + 1)
        return out
    if isinstance(node, yaml.MappingNode):
        try:
            loader.flatten_mapping(node)  # `<<: {...}` merge keys, as safe_load does
        except yaml.YAMLError as exc:
            raise YamlError(line, f"not valid YAML: {exc.problem or exc}") from None
        out = LDict()
        out.line = line
        for key_node, value_node in node.value:
            key = _build(key_node, loader)
            if isinstance(key, (dict, list)):
                key = str(key)
            key_line = key_node.start_mark.line + 1
            if key in out:
                out.duplicates.append((key, key_line))
            out[key] = _build(value_node, loader)
            out.key_lines[key] = key_line
        return out
    return construct(loader, node)  # a scalar, as safe_load builds it
