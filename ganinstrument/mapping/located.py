"""YAML read the way `yaml.safe_load` reads it, but every mapping and list remembers its lines.

The schema reports each problem as `file:line`, so the loader keeps, for every dict and list,
the line it starts on and the line of each key or item. Scalars are built by PyYAML's own
SafeConstructor, so `yes`, `0x10`, `1e3` and `null` mean exactly what `safe_load` makes of
them. Duplicate keys (which `safe_load` silently resolves to the last) are recorded so the
schema can report them.
"""

from __future__ import annotations

import yaml

__all__ = ["LDict", "LList", "YamlSyntaxError", "load_located", "line_of"]


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line` is 1-based."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(message)


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

    Raises YamlSyntaxError with the 1-based line of the first syntax error.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(node, loader, set())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlSyntaxError(line, f"not valid YAML: {exc.problem or exc.context or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _build(node, loader: yaml.SafeLoader, active: set[int]):
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if id(node) in active:  # an alias inside itself: safe_load would build a cycle
        raise YamlSyntaxError(line, "not valid here: a recursive alias")
    active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            out = LList()
            out.line = line
            for item in node.value:
                out.append(_build(item, loader, active))
                out.item_lines.append(item.start_mark.line + 1)
            return out
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)  # `<<: *base` merge keys, as safe_load does
            out = LDict()
            out.line = line
            for key_node, value_node in node.value:
                key = _build(key_node, loader, active)
                if isinstance(key, (dict, list)):
                    key = str(key)
                key_line = key_node.start_mark.line + 1
                if key in out:
                    out.duplicates.append((key, key_line))
                out[key] = _build(value_node, loader, active)
                out.key_lines[key] = key_line
            return out
    finally:
        active.discard(id(node))
    return loader.construct_object(node, deep=True)  # pragma: no cover - no other node kinds
