"""show.apply_controls: the one order a frame's controls are applied in, live and in render."""

from __future__ import annotations

import pytest

from ganinstrument.common.events import ParamUpdate
from ganinstrument.instrument.facade import Instrument
from ganinstrument.instrument.show import Panic, apply_controls


@pytest.fixture()
def inst():
    return Instrument("demo", device="cpu")


def _acting(panic: Panic, seen: list[str]):
    def act(update: ParamUpdate) -> bool:
        seen.append(update.target)
        return panic.toggle(update.target) is not None
    return act


def test_keys_act_while_frozen_and_updates_wait_for_the_pad_that_unfreezes(inst):
    panic, seen = Panic(), []
    panic.toggle("panic.freeze")
    seed = inst.state.target("seed")
    touched = apply_controls(inst, panic, ["seed.next"], [ParamUpdate("z.0", 0.5, source="osc")],
                             _acting(panic, seen))
    assert inst.state.target("seed") == seed + 1  # the key went through the freeze
    assert inst.state.target("z.0") != 0.5 and touched == ""  # the move did not
    touched = apply_controls(inst, panic, [], [ParamUpdate("z.1", 0.25),
                                               ParamUpdate("panic.freeze", action=True),
                                               ParamUpdate("z.2", -0.75, source="midi")],
                             _acting(panic, seen))
    assert not panic.frozen
    assert inst.state.target("z.1") != 0.25  # before the unfreeze, in arrival order: dropped
    assert inst.state.target("z.2") == -0.75 and touched == "z.2 -0.75"
    assert seen == ["seed.next", "panic.freeze"]  # the caller sees actions only, keys first


def test_an_action_the_caller_declines_goes_to_the_instrument(inst):
    panic = Panic()
    seed = inst.state.target("seed")
    touched = apply_controls(inst, panic, ["no.such.key"], [ParamUpdate("seed.next", action=True)],
                             lambda update: False)
    assert inst.state.target("seed") == seed + 1
    assert touched.startswith("seed.next")
    assert not any("no.such.key" in w for w in inst.warnings)  # unknown keys are ignored quietly
