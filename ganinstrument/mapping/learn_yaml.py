"""Writing a learned binding into a mapping file without disturbing the rest of it.

The file is edited as text: PyYAML's composer gives each node's position, so a binding for the
same control is replaced in place and a new one is appended after the last item of the top-level
`bindings:` list, in the list's own indentation. Comments, key order, quoting and the other
sections stay byte for byte as the performer wrote them. A binding is one flow-style line:

    - {cc: 7, channel: 1, target: psi}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ..common.files import write_whole
from ..common.yamlsafe import MAPPING_BYTES, LimitedLoader, YamlError, compose, construct, read_text
from .learn import Detection, LearnError
from .parse import parse_mapping
from .schema import MappingError

NEW_FILE = """\
# ganinstrument mapping, written by `ganinstrument learn`; edit freely (comments are kept).
schema_version: 1
info: {name: learned}
bindings:
"""
_PLAIN = re.compile(r"[A-Za-z_][\w.\-*]*$")
_SOURCES = ("cc", "cc14", "nrpn", "note", "pitchbend", "aftertouch", "polytouch", "program", "osc")


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return text if _PLAIN.match(text) and text not in ("true", "false", "null", "yes", "no", "on", "off") \
        else json.dumps(text)


def binding_fields(found: Detection, name: str, *, is_action: bool) -> dict:
    """The binding's keys in the mapping schema (channels 1..16, as files have them)."""
    if found.kind == "program" and not is_action:
        raise LearnError(f"a program change selects presets; bind it to an action such as preset.recall, not {name}")
    if is_action and (found.kind in ("cc14", "pitchbend", "aftertouch") or found.encoder):
        raise LearnError(f"{found.describe()} is continuous; an action needs a button (or a program change)")
    source = {"cc14": found.number, "cc": found.number, "note": found.number, "pitchbend": True,
              "aftertouch": True, "program": "any"}[found.kind]
    fields = {found.kind: source, "channel": found.channel + 1}
    fields["action" if is_action else "target"] = name
    if found.encoder:
        fields["encoder"] = found.encoder
    elif found.button and found.kind == "cc" and not is_action:
        fields["mode"] = "momentary"
    return fields


def binding_text(fields: dict) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in fields.items()) + "}"


def _construct(node):
    loader = LimitedLoader("")
    try:
        return construct(loader, node)
    finally:
        loader.dispose()


def _controls(item: dict, default_channel) -> tuple[str, object, object] | None:
    kinds = [k for k in _SOURCES if k in item]
    if len(kinds) != 1:
        return None
    return kinds[0], item[kinds[0]], item.get("channel", default_channel)


def _same_control(existing, fields: dict) -> str | None:
    """None: another control; "same": this one; "template": a line covering several, this among them."""
    kind, number, channel = existing
    new_kind = next(k for k in _SOURCES if k in fields)
    new_number, new_channel = fields[new_kind], fields["channel"]
    if channel not in ("any", new_channel):
        return None
    cc_like = {"cc", "cc14"}
    if kind != new_kind and not (kind in cc_like and new_kind in cc_like):
        return None
    if new_kind in ("pitchbend", "aftertouch", "program"):
        return "same"
    mine = {new_number, new_number + 32} if new_kind == "cc14" else {new_number}
    if isinstance(number, bool) or not isinstance(number, int):
        theirs = _numbers(number)
        return "template" if theirs & mine or number == "any" else None
    theirs = {number, number + 32} if kind == "cc14" else {number}
    return "same" if theirs & mine else None


def _numbers(value) -> set[int]:
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool)}
    m = re.fullmatch(r"\s*(\d+)\s*\.\.\s*(\d+)\s*", str(value))
    return set(range(int(m.group(1)), int(m.group(2)) + 1)) if m else set()


def update_text(text: str, fields: dict) -> str:
    """`text` with the binding added (or the one for the same control replaced); pure."""
    item = binding_text(fields)
    if not text.strip():
        return NEW_FILE + f"  - {item}\n"
    try:
        root, loader = compose(text)
        loader.dispose()
    except YamlError as exc:
        raise LearnError(f"line {exc.line}: {exc}; the file is left alone") from None
    if not isinstance(root, yaml.MappingNode):
        raise LearnError("the file is not a mapping file (its top level is not a mapping)")
    keys = {k.value: (k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    defaults = _construct(keys["defaults"][1]) if "defaults" in keys else None
    default_channel = defaults.get("channel", 1) if isinstance(defaults, dict) else 1
    if not text.endswith("\n"):
        text += "\n"
    if "bindings" not in keys:
        return text + f"bindings:\n  - {item}\n"
    key, seq = keys["bindings"]
    if isinstance(seq, yaml.ScalarNode) and seq.tag.endswith(":null"):
        colon = text.index(":", key.end_mark.index) + 1
        return text[:colon] + f"\n{' ' * (key.start_mark.column + 2)}- {item}" + text[colon:]
    if not isinstance(seq, yaml.SequenceNode):
        raise LearnError(f"line {key.start_mark.line + 1}: bindings is not a list")
    for node in seq.value:
        controls = _controls(_construct(node), default_channel) if isinstance(node, yaml.MappingNode) else None
        same = controls and _same_control(controls, fields)
        if same == "template":
            raise LearnError(f"line {node.start_mark.line + 1} already binds this control among several; "
                             "edit that line, or learn another control")
        if same == "same":
            end = node.end_mark.index if node.flow_style else node.value[-1][1].end_mark.index
            return text[:node.start_mark.index] + item + text[end:]
    if seq.flow_style:
        close = text.rindex("]", 0, seq.end_mark.index)
        sep = ", " if seq.value else ""
        return text[:close] + sep + item + text[close:]
    last = seq.value[-1]
    end = last.end_mark.index if getattr(last, "flow_style", True) or not isinstance(last, yaml.MappingNode) \
        else last.value[-1][1].end_mark.index
    eol = text.find("\n", end)
    eol = len(text) if eol < 0 else eol + 1
    return text[:eol] + f"{' ' * seq.start_mark.column}- {item}\n" + text[eol:]


def add_binding(path, found: Detection, name: str, *, is_action: bool, registry=None) -> str:
    """Write the binding for `found` -> `name` into the mapping file at `path` (created if missing),
    atomically; returns the binding's text. With a `registry`, the new file is checked with the
    mapping schema first and left untouched if the new binding is the one with a problem."""
    fields = binding_fields(found, name, is_action=is_action)
    path = Path(path)
    try:
        text = read_text(path, MAPPING_BYTES) if path.exists() else ""
        new = update_text(text, fields)
    except (LearnError, YamlError) as exc:
        raise LearnError(f"{path}: {exc}") from None
    except OSError as exc:  # (a folder of that name, a file gone unreadable: the session goes on)
        raise LearnError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if registry is not None:
        _check(new, path, registry, binding_text(fields))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LearnError(f"{path}: cannot make its folder ({exc.strerror or exc})") from None
    with write_whole(path, ".tmp", lambda why: LearnError(f"{path}: cannot write there ({why})"), durable=True) as tmp:
        Path(tmp).write_text(new, encoding="utf-8")
    return f"- {binding_text(fields)}"


def _check(text: str, path: Path, registry, item: str) -> None:
    try:
        parse_mapping(text, path, registry)
    except MappingError as exc:
        lines = text.splitlines()
        mine = [p for p in exc.problems if 0 < p.line <= len(lines) and item in lines[p.line - 1]]
        if mine:
            raise LearnError("; ".join(p.format(str(path)) for p in mine)) from None
