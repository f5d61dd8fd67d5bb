"""Reading a mapping file's sections into the frozen dataclasses of schema.py.

One pass collects every problem (checks.Checker); bindings are first read into `Proto`s so
that templates (number ranges, globs) can be expanded and names checked against a registry
before anything frozen is built (names.py). Here: the entry point `parse` and the top-level
sections (info, device, defaults, templates, banks and their pages). One binding entry is read
by parse_bindings.py, the `modulation:` routes by parse_modulation.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping as MappingOf
from pathlib import Path

from ..common.text import shorten_repr
from ..common.yamlsafe import MAPPING_BYTES, YamlError, read_text
from ..state.params import Registry, SignalSpec
from . import names
from .checks import MISSING, Checker, Problem
from .located import LDict, LList, YamlSyntaxError, line_of, load_located
from .parse_bindings import BINDING_KEYS, Defaults, Proto, binding, button_source, read_channel
from .parse_modulation import modulation_routes
from .parse_signals import envelopes, lfos
from .schema import SCHEMA_VERSION, Bank, DeviceMatch, Info, Mapping, MappingError, Page
from .takeover import MODES as TAKEOVER_MODES

TOP_KEYS = ("schema_version", "info", "device", "defaults", "templates", "bindings", "banks", "modulation", "lfos",
            "envelopes")
INFO_KEYS = ("name", "author", "device", "source", "notes")
DEFAULT_KEYS = ("channel", "takeover", "smoothing_ms")


def parse(text: str, path: str, registry: Registry | None,
          signals: MappingOf[str, SignalSpec] | None = None) -> Mapping:
    ck = Checker(path)
    try:
        data = load_located(text)
    except YamlSyntaxError as exc:
        hint = "check indentation, colons and brackets" if str(exc).startswith("not valid YAML") else ""
        raise MappingError(path, [Problem(exc.line, str(exc), hint)]) from None
    if not isinstance(data, LDict):
        raise MappingError(path, [Problem(line_of(data, 1), "expected a mapping file: key: value lines at the top "
                                          "level (schema_version, info, device, bindings, ...)")])
    ck.keys(data, TOP_KEYS, "mapping")
    version = data.get("schema_version", MISSING)
    if version is MISSING:
        ck.problem(data.line, "schema_version is missing", f"add 'schema_version: {SCHEMA_VERSION}' at the top")
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        ck.problem(data.line_of("schema_version"),
                   f"schema_version must be a positive whole number, got {shorten_repr(version)}")
    elif version > SCHEMA_VERSION:
        ck.problem(data.line_of("schema_version"), f"schema_version {version} is newer than this ganinstrument "
                   f"understands ({SCHEMA_VERSION})", "update ganinstrument")
    info = _info(data, ck)
    device = _device(data, ck)
    defaults = _defaults(data, ck)
    templates = _templates(data, ck)
    state = {"group": 0}
    protos: list[Proto] = []
    raw = data.get("bindings", MISSING)
    if raw is not MISSING and raw is not None:
        items = ck.sequence(raw, data.line_of("bindings"), "bindings")
        for i, item in enumerate(items or ()):
            protos += binding(item, items.line_of(i), ck, defaults, templates, f"bindings[{i}]", None, state)
    banks = _banks(data, ck, defaults, templates, protos, state)
    routes = modulation_routes(data, ck)
    declared = Mapping(lfos=tuple(lfos(data, ck)), envelopes=tuple(envelopes(data, ck)))
    names.check_duplicates(protos, banks, ck)
    own = declared.signals()  # (the signals the file declares itself, and its own targets)
    if registry is not None:
        registry = registry.with_names(declared.targets(), declared.actions())
    bindings, routes = names.resolve(protos, routes, registry, ck, signals, own, declared.envelopes)
    if ck.problems:
        raise MappingError(path, ck.problems)
    global_bindings = tuple(b for b, p in bindings if p.scope is None)
    built_banks = tuple(
        Bank(bank["name"], tuple(Page(page["name"], tuple(b for b, p in bindings if p.scope == (bi, pi)),
                                      page["select"], page["line"]) for pi, page in enumerate(bank["pages"])),
             bank["next"], bank["prev"], bank["line"])
        for bi, bank in enumerate(banks))
    return Mapping(schema_version=version, info=info, device=device, bindings=global_bindings, banks=built_banks,
                   modulation=tuple(routes), lfos=declared.lfos, envelopes=declared.envelopes, path=path,
                   warnings=tuple(w.format(path) for w in ck.warnings), resolved=registry is not None)


# -- header sections ----------------------------------------------------------------------------
def _info(data: LDict, ck: Checker) -> Info:
    raw = data.get("info")
    if raw is None:
        return Info()
    d = ck.mapping(raw, data.line_of("info"), "info")
    if d is None:
        return Info()
    ck.keys(d, INFO_KEYS, "info")
    values = {k: ck.string(d, k, "info", default="") or "" for k in INFO_KEYS}
    return Info(**values)


def _device(data: LDict, ck: Checker) -> DeviceMatch:
    raw = data.get("device")
    if raw is None:
        return DeviceMatch()
    if isinstance(raw, str):
        d = LDict(input=raw, output=raw)
        d.line = data.line_of("device")
        d.key_lines = {"input": d.line, "output": d.line}
    else:
        d = ck.mapping(raw, data.line_of("device"), "device")
        if d is None:
            return DeviceMatch()
        ck.keys(d, ("input", "output"), "device")
    return DeviceMatch(input=ck.regex_or_text(d, "input", "device") or "",
                       output=ck.regex_or_text(d, "output", "device") or "")


def _defaults(data: LDict, ck: Checker) -> Defaults:
    raw = data.get("defaults")
    out = Defaults()
    if raw is None:
        return out
    d = ck.mapping(raw, data.line_of("defaults"), "defaults")
    if d is None:
        return out
    ck.keys(d, DEFAULT_KEYS, "defaults")
    out.channel = read_channel(d, "channel", ck, "defaults", 0)
    out.takeover = ck.choice(d, "takeover", TAKEOVER_MODES, "defaults", default=None)
    out.smoothing_ms = ck.number(d, "smoothing_ms", "defaults", default=None, lo=0.0)
    return out


def _templates(data: LDict, ck: Checker) -> dict[str, LDict]:
    raw = data.get("templates")
    if raw is None:
        return {}
    d = ck.mapping(raw, data.line_of("templates"), "templates")
    out: dict[str, LDict] = {}
    for name, body in (d or {}).items():
        t = ck.mapping(body, d.line_of(name), f"templates.{name}")
        if t is not None:
            ck.keys(t, tuple(k for k in BINDING_KEYS if k != "use"), f"templates.{name}")
            out[str(name)] = t
    return out


# -- banks ------------------------------------------------------------------------------------
def _banks(data: LDict, ck: Checker, defaults, templates, protos: list[Proto], state) -> list[dict]:
    banks, seen = [], set()
    for bi, what, d, _ in ck.items(data, "banks", ("name", "next", "prev", "pages")):
        name = ck.string(d, "name", what) or f"bank{bi}"
        if name in seen:
            ck.problem(d.line_of("name"), f"{what}: bank name {shorten_repr(name)} is used twice")
        seen.add(name)
        bank = {"name": name, "line": d.line, "pages": []}
        for key in ("next", "prev"):
            bank[key] = button_source(d[key], d.line_of(key), ck, defaults, f"{what}.{key}") if key in d else None
        pages = ck.sequence(d.get("pages"), d.line_of("pages"), f"{what}.pages") if "pages" in d else None
        if not pages:
            ck.problem(d.line, f"{what}: a bank needs 'pages:', a list of pages with bindings")
            continue
        page_names = set()
        for pi, praw in enumerate(pages):
            pwhat = f"{what}.pages[{pi}]"
            p = ck.mapping(praw, pages.line_of(pi), pwhat)
            if p is None:
                continue
            ck.keys(p, ("name", "select", "bindings"), pwhat)
            pname = ck.string(p, "name", pwhat, default=f"{pi + 1}") or f"{pi + 1}"
            if pname in page_names:
                ck.problem(p.line_of("name"),
                           f"{pwhat}: page name {shorten_repr(pname)} is used twice in bank {shorten_repr(name)}")
            page_names.add(pname)
            select = button_source(p["select"], p.line_of("select"), ck, defaults, f"{pwhat}.select") \
                if "select" in p else None
            bank["pages"].append({"name": pname, "select": select, "line": p.line})
            blist = ck.sequence(p.get("bindings"), p.line_of("bindings"), f"{pwhat}.bindings") or LList()
            for j, b in enumerate(blist):
                protos += binding(b, blist.line_of(j), ck, defaults, templates, f"{pwhat}.bindings[{j}]",
                                  (bi, pi), state)
        banks.append(bank)
    return banks


def parse_mapping(text: str, path="<string>", registry: Registry | None = None,
                  signals: MappingOf[str, SignalSpec] | None = None) -> Mapping:
    """Parse mapping YAML text; raises MappingError with every problem (lines of `path`).
    `registry`: check every name against it (targets, actions, signals); without one,
    `signals` (if given) still checks the modulation routes' features."""
    return parse(text, os.fspath(path), registry, signals)


def load_mapping(path, registry: Registry | None = None, signals: MappingOf[str, SignalSpec] | None = None) -> Mapping:
    """Read and parse a mapping file (see schema.py's docstring); raises MappingError."""
    path = Path(path)
    try:
        text = read_text(path, MAPPING_BYTES)
    except FileNotFoundError:
        raise MappingError(path, [Problem(0, "no such mapping file")]) from None
    except YamlError as exc:
        raise MappingError(path, [Problem(exc.line, str(exc))]) from None
    except OSError as exc:
        raise MappingError(path, [Problem(0, f"cannot read: {exc.strerror or exc}")]) from None
    return parse_mapping(text, path, registry, signals)
