"""What the preview's HUD says besides the picture, gathered from the engine once a frame.

Pace (fps, frame time, dropped frames), the last control touched, the controls soft takeover
holds back right now (by name, where each is and where it must go: mapping.router.Pickup),
the audio level and onsets (or why there is no audio), the tempo (BPM, who sets it, the beat
in the bar, the bar), quantized actions still waiting for their beat, a controller still awaited, the newest
message of MIDI in/out, OSC, the engine and the outputs for NEWS_S seconds (a device lost
or back, the MIDI process restarted, frozen, a take saved, an output failed and open again), a
take recording, panic state and the newest error or warning, also for NEWS_S seconds. Every
text is shortened and its control characters made visible (text.py); the preview wraps it.
"""

from __future__ import annotations

from ..common.reporting import Reporting
from ..common.text import shorten

NEWS_S = 8.0  # how long the HUD shows a source's newest message
PICKUPS_SHOWN = 3  # controls waiting for pickup named on the HUD (then a count)


class Hud:
    """Builds the HUD's values from an Engine; remembers which news it has already shown."""

    def __init__(self) -> None:
        self._seen: dict[int, object] = {}  # per source: the newest message already shown
        self._news: tuple[str, float] | None = None  # (text, since)
        self._problem_key: tuple[int, int] | None = None  # (frame errors, warnings said)
        self._problem: tuple[str, float] | None = None  # (text, since)

    def values(self, engine, now: float) -> dict[str, object]:
        stats, sinks = engine.stats, engine.sinks
        hud: dict[str, object] = {
            "fps": f"{stats.fps:.1f}", "frame": f"{stats.frame_ms:.1f} ms",
            "dropped": sum(s.dropped for s in sinks.stats()) if sinks is not None else 0}
        if stats.last_touched:
            hud["control"] = stats.last_touched
        pickups = engine.router.pickups() if engine.router is not None else []
        if pickups:  # controls soft takeover holds back: where each is, where it must go
            shown = "; ".join(p.describe() for p in pickups[:PICKUPS_SHOWN])
            more = len(pickups) - PICKUPS_SHOWN
            hud["pickup"] = shown + (f"; {more} more" if more > 0 else "")
        pending = engine.quantizer.pending()
        if pending:  # actions waiting for their beat or bar
            hud["pending"] = "; ".join(pending[:PICKUPS_SHOWN]) + (f"; {len(pending) - PICKUPS_SHOWN} more"
                                                                   if len(pending) > PICKUPS_SHOWN else "")
        inputs: list[Reporting] = [*engine.controls, *engine.modulation,  # (audio: the level; beat: the tempo)
                                   *((engine.feedback,) if engine.feedback is not None else ())]
        outputs: list[Reporting] = list(sinks) if sinks is not None else []
        for part in inputs + outputs:
            hud.update(part.hud_lines())  # (NDI: who is watching; takes: REC; MIDI: waiting for...)
        news = self.news([*inputs, engine, *outputs], now)  # (the outputs' last: "take saved" after "take ending")
        if news:
            hud["news"] = shorten(news, 240)
        if engine.frozen or engine.blackout:
            hud["panic"] = "frozen" if engine.frozen else "blackout"
        problem = self.problem(stats, engine.inst.warnings, now)
        if problem:
            hud["error"] = shorten(problem, 240)
        return hud

    def problem(self, stats, warnings, now: float) -> str | None:
        """The newest error (a frame that failed) or warning (a preset, a mapping), for
        NEWS_S seconds after it happened; a failure that repeats stays up while it does."""
        seen = self._problem_key or (0, 0)
        if (stats.errors, warnings.said) != seen:
            self._problem_key = (stats.errors, warnings.said)
            text = stats.last_error if stats.errors != seen[0] else warnings[-1]
            if text:
                self._problem = (text, now)
        if self._problem is not None and now - self._problem[1] < NEWS_S:
            return self._problem[0]
        return None

    def news(self, sources, now: float) -> str | None:
        """The newest message any of `sources` (Reporting parts, the engine) has said, for
        NEWS_S seconds after it appeared."""
        for part in sources:
            messages = part.messages
            if not messages:
                continue
            newest = messages[-1]
            if self._seen.get(id(part)) is not newest:
                self._seen[id(part)] = newest
                self._news = (str(newest), now)
        if self._news is not None and now - self._news[1] < NEWS_S:
            return self._news[0]
        return None
