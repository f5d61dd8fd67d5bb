"""MIDI learn, the conversation: ask for a target, capture the control the performer moves
(learn.py detects what it is), write the binding into the mapping file (learn_yaml.py).
`ganinstrument learn` runs it."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..common.clock import Clock, MonotonicClock
from ..common.errors import GanInstrumentError
from ..mapping.learn import capture, detect, resolve_name
from ..mapping.learn_yaml import add_binding
from ..state.params import Registry


def learn_loop(registry: Registry, source, out_path, *, ask: Callable[[str], str] = input,
               say: Callable[[str], None] = print, clock: Clock | None = None,
               sleep: Callable[[float], None] = time.sleep, quiet_s: float = 1.0) -> int:
    """Ask for targets, capture a control each, write bindings; returns how many were written."""
    clock = clock or MonotonicClock()
    names = list(registry.targets) + list(registry.actions)
    written = 0
    say(f"MIDI learn: bindings go to {out_path}. Type a target or action (or its number; "
        "'?' lists them; empty to finish).")
    while True:
        try:
            answer = ask("target> ").strip()
        except EOFError:
            break
        if not answer:
            break
        if answer == "?":
            for i, name in enumerate(names, 1):
                say(f"{i:4d}  {name}{'  (action)' if name in registry.actions else ''}")
            continue
        try:
            name = resolve_name(registry, answer, names)
        except GanInstrumentError as exc:
            say(str(exc))
            continue
        say(f"move the control for {name} now (encoders: a few clicks clockwise, then back)")
        events = capture(source, clock, quiet_s=quiet_s, sleep=sleep)
        try:
            found = detect(events)
            line = add_binding(out_path, found, name, is_action=name in registry.actions, registry=registry)
        except GanInstrumentError as exc:
            say(f"not written: {exc}")
            continue
        say(f"{found.describe()} -> {name}")
        for note in found.notes:
            say(f"  note: {note}")
        say(f"  wrote {line}")
        written += 1
    say(f"{written} binding{'s' if written != 1 else ''} written to {out_path}")
    return written
