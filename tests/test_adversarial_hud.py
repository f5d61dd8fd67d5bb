"""The HUD and the preview given hostile text, and outputs that fail: any text fits (wrapped,
cut, control characters made visible), messages expire, a failed output opens again, and
"dropped" counts only pictures an output failed to show. Real OpenGL under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_outputs_preview import eventually, near, quadrants, screenshot, xvfb  # noqa: F401 (fixture)

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.frame import Frame
from ganinstrument.common.text import visible
from ganinstrument.engine.hud import NEWS_S
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.outputs.base import Sinks
from ganinstrument.outputs.preview import HUD_ENTRY_LINES, HUD_FONT_PX, PreviewSink, format_hud, hud_font, render_hud

HOSTILE = ["line one\nline two", "\x1b[31mred\x1b[0m", "zero\u200bwidth", "bad \ud800 surrogate",
           "tab\there", "x" * 50_000, "word " * 10_000, "\u202eevil", "émoji 🎛", "", "\x00"]


@pytest.fixture(scope="module")
def inst():
    return Instrument("demo", device="cpu")


def test_visible_escapes_what_cannot_be_seen_and_keeps_what_can():
    assert visible("a\nb\tc\x1b\u200b\ud800") == "a\\nb\\tc\\x1b\\u200b\\ud800"
    assert visible("Grüße, 東京 🎛") == "Grüße, 東京 🎛"
    assert visible(b"\xff\n") == "\\xff\\n"

    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

    assert visible(Hostile()) == "<Hostile: RuntimeError>"


@pytest.mark.parametrize("text", HOSTILE)
def test_any_text_fits_the_hud_on_one_to_three_lines(text):
    font = hud_font()
    rgba = render_hud(format_hud({"fps": 60.0, "news": text, "error": text}), font, max_width=512)
    line_h = HUD_FONT_PX + 4
    assert rgba.shape[1] <= 512 and rgba.shape[2] == 4
    assert rgba.shape[0] <= 8 + line_h * (1 + 2 * HUD_ENTRY_LINES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=40), st.one_of(st.text(max_size=3000), st.floats(), st.none(),
                                                       st.integers()), max_size=6),
       st.integers(min_value=1, max_value=4000))
def test_the_hud_draws_whatever_it_is_given(values, width):
    rgba = render_hud(format_hud(values) or [("fps", "1")], hud_font(), max_width=width)
    assert rgba.shape[1] <= max(width, 52)  # (a window narrower than 52 px gets a 40 px column)


def test_errors_and_warnings_leave_the_hud_after_a_while(inst):
    clock = FakeClock()
    engine = Engine(inst, clock=clock, fps=None, trim_heap_s=None)
    problem = "presets/07.yaml: 2 problems:\n  - psi: nan\n  - z.0: inf"
    inst.warnings.append(problem)
    engine.frame()
    shown = engine.hud_values(clock.now())["error"]
    assert "\n" not in shown and "\\n" in shown
    clock.advance(NEWS_S + 1)
    assert "error" not in engine.hud_values(clock.now())
    inst.warnings.append(problem)  # the same again: shown again
    assert "error" in engine.hud_values(clock.now())
    engine.close()


def test_hostile_hud_text_keeps_the_preview_up(xvfb, inst, tmp_path):  # noqa: F811
    preview = PreviewSink(title="ganinstrument-hostile", size=(400, 400))
    preview.open(256, 256, 30)
    clock = FakeClock()
    engine = Engine(inst, sinks=Sinks([preview]), clock=clock, fps=None, trim_heap_s=None)
    try:
        for text in HOSTILE:
            engine.messages.append(text)  # as an OSC address or a preset's error would arrive
            inst.warnings.append(text)
            engine.frame()
            clock.advance(0.05)
            drawn = visible(text)[:20]

            def on_the_hud():  # what the preview thread last drew into its HUD texture
                shown = preview._hud_text
                return shown is not None and any(drawn in line for _, line in shown[0])

            assert eventually(on_the_hud), f"{text[:20]!r} never reached the HUD"
            assert preview.stats.errors == 0
        assert preview.stats.errors == 0 and preview.stats.enabled
        wid = preview.window_id
        # The HUD stays inside the window's top: the picture still shows below it.
        shot = screenshot(wid)
        assert shot.shape == (400, 400, 3)
        assert shot[300:].std() > 1.0  # the demo's colour field, not a black or HUD-grey box
    finally:
        engine.close()


class BreaksOnce(PreviewSink):
    """A real preview whose drawing fails once (as a driver error would)."""

    broken = False

    def _write(self, frame):
        if frame.index == 1 and not self.broken:
            self.broken = True
            raise RuntimeError("GL_OUT_OF_MEMORY (simulated)")
        super()._write(frame)


def test_a_preview_that_fails_opens_again_and_shows_the_picture(xvfb):  # noqa: F811
    preview = BreaksOnce(title="ganinstrument-reopen", size=(128, 128), show_hud=False)
    preview.open(64, 64, 30)
    try:
        picture = torch.from_numpy(quadrants())
        preview.submit(Frame(picture, 0.0, 0))
        assert preview.wait_idle(5)
        preview.submit(Frame(picture, 0.1, 1))  # this one fails
        assert eventually(lambda: preview.stats.restarts == 1, 2.0), "not open again within 2 s"
        green = np.zeros((64, 64, 3), np.uint8)
        green[:] = (0, 255, 0)
        preview.submit(Frame(torch.from_numpy(green), 0.2, 2))
        assert preview.wait_idle(5)
        assert eventually(lambda: near(screenshot(preview.window_id)[64, 64], (0, 255, 0)))
        assert preview.stats.errors == 1 and preview.stats.enabled
        assert "preview failed" in preview.messages[0] and "open again" in preview.messages[-1]
    finally:
        assert preview.close(5)


def test_an_idle_show_drops_nothing(xvfb, inst):  # noqa: F811
    preview = PreviewSink(title="ganinstrument-idle", size=(128, 128))
    preview.open(256, 256, 30)
    engine = Engine(inst, sinks=Sinks([preview]), clock=FakeClock(), fps=None, max_frames=200,
                    trim_heap_s=None)
    engine.run()  # as fast as it goes: far faster than the preview draws; nothing moves
    stats = preview.stats
    assert stats.submitted == 200 and stats.dropped == 0 and stats.errors == 0
