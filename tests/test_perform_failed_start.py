"""A show that fails after its parts have started (the engine's constructor raising, here) leaves
nothing running: the beat clock (and with it Link's thread), the MIDI and OSC inputs, the session
file and the outputs are closed before the error goes on."""

from __future__ import annotations

import threading

import pytest

from ganinstrument.commands import perform
from ganinstrument.commands.cli import main


def test_a_failed_start_closes_every_part_it_opened(tmp_path, monkeypatch):
    import ganinstrument.engine.loop as loop

    closed = []
    real_beat_source = perform.beat_source

    def beat_source(*args, **kwargs):
        beat = real_beat_source(*args, **kwargs)
        stop = beat.stop
        beat.stop = lambda timeout_s=2.0: closed.append("beat") or stop(timeout_s)
        return beat

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("the engine could not be built")

    monkeypatch.setattr(perform, "beat_source", beat_source)
    monkeypatch.setattr(loop, "Engine", Broken)
    threads_before = set(threading.enumerate())
    session = tmp_path / "show.jsonl"
    args = ["perform", "--model", "demo", "--device", "cpu", "--midi-port", "none", "--audio-device", "none",
            "--osc-port", "0", "--output", "null", "--max-frames", "3", "--no-restart", "--no-link",
            "--presets-dir", str(tmp_path), "--record-session", str(session)]
    with pytest.raises(RuntimeError, match="could not be built"):
        main(args)
    assert closed == ["beat"]
    assert session.exists() and session.read_text().endswith("\n")  # written out and closed
    left = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert left == [], left  # (the OSC server's thread, the outputs' workers: all stopped)
