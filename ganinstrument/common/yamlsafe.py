"""YAML written by users (mappings, presets, `learn --out` files), read with limits.

`yaml.safe_load` never runs code, but a few hundred bytes of aliases ("billion laughs") stand
for gigabytes once anything walks the result, a deep `[[[[...` overflows the stack, and a 50 MB
file takes minutes. So every YAML file the package reads from a user goes through here:

- the file may hold at most `MAPPING_BYTES` (mappings, learn files) or `PRESET_BYTES` (presets:
  room for an explicit latent of the widest z a model may have); only that much is ever read;
- aliases (`*name`, and so `<<: *name` merge keys) are refused with their line: a mapping or a
  preset has no need for them, write the value out;
- nesting deeper than `MAX_DEPTH` is refused;
- what YAML says about a value it cannot read is clipped (text.shorten), so a message stays a line.

Scalars are still built by PyYAML's SafeConstructor, so `yes`, `0x10`, `1e3` and `null` mean
what `safe_load` makes of them; a scalar it cannot build (`2001-02-30`) is a YamlError too.
"""

from __future__ import annotations

import os

import yaml

from .errors import GanInstrumentError
from .text import shorten

__all__ = ["MAPPING_BYTES", "MAX_DEPTH", "PRESET_BYTES", "LimitedLoader", "YamlError", "compose", "load",
           "read_text"]

MAPPING_BYTES = 256 * 1024
PRESET_BYTES = 1024 * 1024
MAX_DEPTH = 32


class YamlError(GanInstrumentError, ValueError):
    """A user's YAML text cannot be read (syntax or a limit); `line` is 1-based (0: the file)."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(message)


def read_text(path, limit: int = MAPPING_BYTES) -> str:
    """The text of a user's YAML file, refusing more than `limit` bytes (never reading more).

    OSError (FileNotFoundError included) is left to the caller, which knows what the file is.
    """
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        try:
            size = f"{os.path.getsize(path) / 1024:.0f} KB"
        except OSError:
            size = "more"
        raise YamlError(0, f"the file is {size}, more than the {limit // 1024} KB such a file may hold "
                        "(is it the right file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise YamlError(line, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


class LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and nesting deeper than MAX_DEPTH while composing."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlError(event.start_mark.line + 1, f"an alias (*{shorten(event.anchor, 40)}) is not accepted here; "
                            "write the value out instead of referring to an anchor")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlError(mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str) -> tuple[yaml.Node | None, LimitedLoader]:
    """The node tree of one YAML document (None for an empty one) and the loader that made it
    (to build scalars with); the caller disposes of the loader. Raises YamlError."""
    loader = None
    try:
        loader = LimitedLoader(text)  # the reader already refuses control characters here
        return loader.get_single_node(), loader
    except BaseException as exc:
        if loader is not None:
            loader.dispose()
        raise _as_yaml_error(exc) from None


def construct(loader: LimitedLoader, node: yaml.Node):
    """One node built as `safe_load` would build it; YamlError where a scalar cannot be built."""
    try:
        return loader.construct_object(node, deep=True)
    except BaseException as exc:
        raise _as_yaml_error(exc, node) from None


def load(text: str):
    """Like `yaml.safe_load(text)` (one document), within the limits; raises YamlError."""
    node, loader = compose(text)
    try:
        if node is None:
            return None
        todo = [node]  # scalars first, one by one, so one that cannot be built is named by its line
        while todo:
            n = todo.pop()
            if isinstance(n, yaml.ScalarNode):
                construct(loader, n)
            else:
                todo.extend(n.value if isinstance(n, yaml.SequenceNode) else (x for kv in n.value for x in kv))
        return construct(loader, node)
    finally:
        loader.dispose()


def _as_yaml_error(exc: BaseException, node: yaml.Node | None = None) -> BaseException:
    if isinstance(exc, YamlError) or not isinstance(exc, (yaml.YAMLError, ValueError, TypeError, OverflowError,
                                                            RecursionError)):
        return exc  # KeyboardInterrupt, MemoryError and our own errors pass as they are
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None) or \
        (node.start_mark if node is not None else None)
    line = mark.line + 1 if mark is not None else 1
    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or exc.context or str(exc)
    elif isinstance(exc, yaml.YAMLError):
        what = str(exc)
    else:  # SafeConstructor's own failures: a date that does not exist, an int of 5000 digits
        return YamlError(line, f"cannot read this value ({type(exc).__name__}: {shorten(exc, 120)})")
    return YamlError(line, f"not valid YAML: {shorten(' '.join(str(what).split()), 120)}")
