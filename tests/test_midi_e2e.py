"""End to end through real JACK ports: sender -> MidiInput -> Router -> Instrument("demo") target values."""

from __future__ import annotations

import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for

from ganinstrument.mapping import parse_mapping
from ganinstrument.mapping.router import Router
from ganinstrument.sources.midi.input import MidiInput

pytestmark = pytest.mark.timeout(90)

MAPPING = """\
schema_version: 1
device: {input: e2e-ctl}
bindings:
  - {cc: 7, target: psi, range: [0, 1], takeover: none}
  - {cc14: 1, target: z.0, range: [-2, 2], takeover: none}
  - {cc: 16, encoder: twos_complement, target: z.1, step: 0.25}
  - {note: 36, action: seed.next}
  - {note: 37, target: z.2, mode: toggle, range: [0, 1]}
"""


@pytest.fixture(scope="module")
def inst():
    from ganinstrument.instrument.facade import Instrument

    return Instrument("demo", device="cpu", presets_dir=".")


def test_streams_reach_the_targets_and_survive_a_replug(jack_server, inst):
    mapping = parse_mapping(MAPPING, "e2e.yaml", inst.registry)
    midi = MidiInput(mapping.device.input, backend=JACK_BACKEND, poll_s=0.05)
    router = Router(mapping, inst.registry, midi.clock, current=inst.state.target)
    target = inst.state.target

    def frame():
        for update in router.route(midi.drain()):
            inst.apply(update)

    def settles(name, value):
        return wait_for(lambda: frame() or target(name) == pytest.approx(value, abs=1e-3), 5.0)

    seed0 = target("seed")
    midi.start()
    try:
        with JackSender("e2e-ctl") as ctl:
            assert wait_for(lambda: midi.open_ports, 5.0), list(midi.messages)
            for v in range(0, 128):  # a fader throw: coalesced to the last value
                ctl.cc(7, v)
            assert settles("psi", 1.0)
            ctl.cc(1, 96)  # 14-bit: MSB then LSB
            ctl.cc(33, 0)
            assert settles("z.0", -2 + 4 * (96 * 128) / 16383)
            for tick in (1, 1, 1, 127):  # +3 -1 ticks
                ctl.cc(16, tick)
            assert settles("z.1", 0.5)
            ctl.note(36, 100)
            ctl.note(36, 0)
            assert settles("seed", seed0 + 1)
            ctl.note(37, 127)
            ctl.note(37, 0)
            assert settles("z.2", 1.0)
        assert wait_for(lambda: not midi.open_ports, 5.0)
        with JackSender("e2e-ctl") as ctl:  # plugged back in: same name, a new port
            assert wait_for(lambda: midi.open_ports, 5.0)
            ctl.cc(7, 0)
            assert settles("psi", 0.0)
    finally:
        assert midi.close(timeout_s=2.0)
