"""The HUD names the faders soft takeover holds back, through the real path: a controller on a
JACK port, the MIDI input, the shipped generic mapping, a preset recalled from a pad, the engine
and its HUD. The message appears when a move does not reach the recalled value and goes when a
move crosses it."""

from __future__ import annotations

import pytest
from jack_helpers import JACK_BACKEND, JackSender, wait_for

from ganinstrument.common.clock import MonotonicClock
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.sources.midi.input import MidiInput

pytestmark = pytest.mark.timeout(90)


def test_the_hud_shows_a_fader_waiting_for_pickup_and_clears_it(jack_server, tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "01 bright.yaml").write_text("schema_version: 1\ntargets: {psi: 1.6}\n")
    clock = MonotonicClock()
    inst = Instrument("demo", device="cpu", presets_dir=presets)
    controls = inst.use_mapping("generic", clock)
    midi = MidiInput("hud-ctl", backend=JACK_BACKEND, clock=clock, poll_s=0.05)
    engine = Engine(inst, router=controls.router, controls=[midi], clock=clock, fps=None, trim_heap_s=None)
    hud = lambda: engine.hud_values(clock.now())  # noqa: E731

    def after(send, check):
        """Send, play frames until `check` holds; send again while it does not (the first
        message after a JACK connection may come before the connection does)."""
        for _ in range(10):
            send()
            if wait_for(lambda: (engine.frame(), check())[1], 0.5):
                return True
        return False

    midi.start()
    try:
        with JackSender("hud-ctl") as ctl:
            assert wait_for(lambda: midi.open_ports, 5.0), list(midi.messages)
            # psi's fader where psi is (1.0): picked up at once
            assert after(lambda: ctl.cc(24, 85), lambda: inst.state.target("psi") == pytest.approx(1.008, abs=1e-3))
            assert "pickup" not in hud()
            # pad 1: recall preset 1, psi 1.6, far from the fader
            assert after(lambda: ctl.note(36, 100), lambda: inst.state.target("psi") == pytest.approx(1.6))
            # a move that stays below 1.6: held back, and the HUD says so
            assert after(lambda: ctl.cc(24, 95), lambda: "pickup" in hud())
            assert hud()["pickup"] == "psi (cc 24 any channel) 1.24 -> 1.6"
            assert inst.state.target("psi") == pytest.approx(1.6)
            # crosses 1.6: picked up, and the message goes
            assert after(lambda: ctl.cc(24, 120), lambda: inst.state.target("psi") == pytest.approx(1.835, abs=1e-3))
            assert "pickup" not in hud()
    finally:
        engine.close()
