"""MIDI without a server: decoding, name matching, hot-plug logic on a fake backend, feedback."""

from __future__ import annotations

import random

import pytest

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ControlEvent
from ganinstrument.sources.midi.feedback import FeedbackBinding, MidiFeedback, from_bindings
from ganinstrument.sources.midi.input import MidiInput, MidiOutput, decode
from ganinstrument.sources.midi.ports import Backend, MidiPortError, PortMatcher, explain_open_error, normalise


# -- decoding ---------------------------------------------------------------------------
@pytest.mark.parametrize("data, expected", [
    ([0xB3, 7, 100], ("control_change", 3, 7, 100.0)),
    ([0x90, 60, 0], ("note_on", 0, 60, 0.0)),  # velocity 0 stays note_on, as in mido
    ([0x8F, 60, 64], ("note_off", 15, 60, 64.0)),
    ([0xA0, 60, 10], ("polytouch", 0, 60, 10.0)),
    ([0xC2, 9], ("program_change", 2, 9, 9.0)),
    ([0xD0, 77], ("aftertouch", 0, 0, 77.0)),
    ([0xE0, 0, 0x40], ("pitchwheel", 0, 0, 0.0)),
    ([0xE0, 0, 0], ("pitchwheel", 0, 0, -8192.0)),
    ([0xE0, 0x7F, 0x7F], ("pitchwheel", 0, 0, 8191.0)),
])
def test_decode_matches_mido(data, expected):
    import mido

    event = decode(data, 1.5, "port")
    assert (event.kind, event.channel, event.number, event.value) == expected
    assert event.timestamp == 1.5 and event.source == "port"
    msg = mido.Message.from_bytes(data)
    assert msg.type == event.kind


@pytest.mark.parametrize("data", [[0xF0, 1, 0xF7], [0xF8], [0xFE], [0xFF], [0xF2, 1, 2]])
def test_system_messages_are_ignored(data):
    assert decode(data) is None


@pytest.mark.parametrize("data", [[0x40, 1, 2], [0xB0, 7], [0xB0, 7, 1, 2], [0xB0, 200, 1], [0xC0]])
def test_malformed_raises_value_error(data):
    with pytest.raises(ValueError):
        decode(data)


def test_random_bytes_never_raise_anything_but_value_error():
    rng = random.Random(0)
    for _ in range(20000):
        data = [rng.randrange(256) for _ in range(rng.randrange(1, 5))]
        try:
            decode(data)
        except ValueError:
            pass


# -- names ------------------------------------------------------------------------------
def test_normalise_strips_alsa_numbers_and_windows_index(monkeypatch):
    assert normalise("nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0") == "nanokontrol2:nanokontrol2 midi 1"
    monkeypatch.setattr("sys.platform", "win32")
    assert normalise("nanoKONTROL2 3") == "nanokontrol2"


@pytest.mark.parametrize("patterns, name, chosen", [
    ("nano", "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0", True),
    ("NANOkontrol", "nanoKONTROL2 SLIDER/KNOB", True),
    ("midimix", "nanoKONTROL2 SLIDER/KNOB", False),
    (["midimix", "nano"], "nanoKONTROL2 SLIDER/KNOB", True),
    ("/launch ?control xl/", "Launch Control XL:Launch Control XL MIDI 1 24:0", True),
    ("/^apc/", "my APC mini", False),
    (None, "X-TOUCH MINI", True),
    (None, "Midi Through:Midi Through Port-0 14:0", False),
    (None, "ganinstrument:out", False),
    (None, "ganinstrument-01:out", False),
    ("ganinstrument", "ganinstrument:out", False),
    ("", "anything", True),
])
def test_port_matcher(patterns, name, chosen):
    assert PortMatcher(patterns).matches(name) is chosen


def test_bad_regex_is_a_clear_error():
    with pytest.raises(MidiPortError, match="not a valid regular expression"):
        PortMatcher("/([/")


def test_windows_port_in_use_message():
    exc = RuntimeError("MidiInWinMM::openPort: error creating Windows MM MIDI input port.")
    err = explain_open_error("input", "nanoKONTROL2 1", exc)
    assert isinstance(err, OSError)
    text = str(err)
    assert "'nanoKONTROL2 1'" in text and "only one program" in text and "loopMIDI" in text


def test_unknown_api_is_a_clear_error():
    with pytest.raises(MidiPortError, match="unknown MIDI API"):
        Backend("mido.backends.rtmidi/NOPE")


# -- hot-plug logic on a fake backend ----------------------------------------------------
class FakeBackend:
    def __init__(self, names=()):
        self.inputs = list(names)
        self.callbacks: dict[str, object] = {}
        self.fail: dict[str, Exception] = {}
        self.down = False

    def names(self, direction):
        if self.down:
            raise MidiPortError("cannot list MIDI inputs: JACK server not running?")
        return list(self.inputs)

    def open_input(self, name, on_bytes):
        if name in self.fail:
            raise explain_open_error("input", name, self.fail[name])
        self.callbacks[name] = on_bytes
        return lambda: self.callbacks.pop(name)

    def open_output(self, name):
        sent = self.callbacks.setdefault(name, [])
        return sent.append, lambda: self.callbacks.pop(name)

    def play(self, name, *data):
        self.callbacks[name](list(data))


def test_input_scan_open_lose_reopen(monkeypatch):
    monkeypatch.setattr("sys.platform", "win32")  # where RtMidi appends an index that may shift
    backend = FakeBackend()
    changes = []
    inp = MidiInput("nano", backend=backend, clock=FakeClock(2.0), on_change=lambda c, n: changes.append((c, n)))
    inp.ports.scan()
    assert inp.open_ports == () and "no MIDI input matches 'nano'" in inp.messages[-1]
    backend.inputs = ["nanoKONTROL2 1", "other"]
    inp.ports.scan()
    assert inp.open_ports == ("nanoKONTROL2 1",)
    backend.play("nanoKONTROL2 1", 0xB0, 0, 5)
    assert inp.drain() == [ControlEvent("control_change", 0, 0, 5.0, 2.0, "nanoKONTROL2 1")]
    backend.inputs = ["other"]
    inp.ports.scan()
    assert inp.open_ports == () and "nanoKONTROL2 1" not in backend.callbacks
    backend.inputs = ["nanoKONTROL2 2"]  # back, with Windows' index shifted
    inp.ports.scan()
    assert changes == [("opened", "nanoKONTROL2 1"), ("lost", "nanoKONTROL2 1"), ("reopened", "nanoKONTROL2 2")]


def test_messages_are_said_once_per_change():
    backend = FakeBackend(["nano"])
    backend.fail["nano"] = RuntimeError("MidiInWinMM::openPort: error creating Windows MM MIDI input port.")
    inp = MidiInput("nano", backend=backend)
    for _ in range(5):
        inp.ports.scan()
    in_use = [m for m in inp.messages if "only one program" in m]
    assert len(in_use) == 1
    backend.down = True
    inp.ports.scan()
    inp.ports.scan()
    assert sum("JACK server not running" in m for m in inp.messages) == 1


def test_backend_down_closes_ports_and_recovers():
    backend = FakeBackend(["nano"])
    inp = MidiInput("nano", backend=backend)
    inp.ports.scan()
    backend.down = True
    inp.ports.scan()
    assert inp.open_ports == ()
    backend.down = False
    inp.ports.scan()
    assert inp.open_ports == ("nano",)


def test_callback_counts_garbage_and_drops():
    backend = FakeBackend(["nano"])
    inp = MidiInput("nano", backend=backend, queue_size=3)
    inp.ports.scan()
    for data in ([0xFE], [0xB0, 7], [0xB0, 1, 1], [0xB0, 2, 2], [0xB0, 3, 3], [0xB0, 4, 4], []):
        backend.play("nano", *data)
    stats = inp.stats()
    assert (stats.received, stats.dropped, stats.ignored, stats.malformed, stats.queued) == (3, 1, 1, 2, 3)
    assert [e.number for e in inp.drain()] == [1, 2, 3]
    assert inp.drain() == []


def test_output_without_patterns_opens_nothing():
    backend = FakeBackend(["synth", "nano"])
    out = MidiOutput(None, backend=backend)
    out.ports.scan()
    assert out.open_ports == () and out.send([0xB0, 1, 1]) is False


def test_output_send_skips_while_poller_holds_the_ports():
    backend = FakeBackend(["nano"])
    out = MidiOutput("nano", backend=backend)
    out.ports.scan()
    with out.ports.lock:
        assert out.send([0xB0, 1, 1]) is False
    assert out.send([0xB0, 1, 2]) is True
    assert backend.callbacks["nano"] == [[0xB0, 1, 2]]


def test_poller_thread_stops_within_timeout():
    inp = MidiInput("nano", backend=FakeBackend(), poll_s=0.01).start()
    assert inp.close(timeout_s=1.0)


# -- feedback -----------------------------------------------------------------------------
class Recorder:
    def __init__(self):
        self.sent, self.ok = [], True

    def send(self, data):
        if self.ok:
            self.sent.append(list(data))
        return self.ok


def make_feedback(values, bindings, **kw):
    clock = FakeClock(10.0)
    out = Recorder()
    fb = MidiFeedback(out, bindings, lambda: values, clock=clock, **kw)
    return fb, out, clock


def test_feedback_sends_changes_only():
    values = {"psi": 0.5, "z.0": 1.0}
    fb, out, clock = make_feedback(values, [("cc", 0, 7, "psi", 0.0, 1.0), ("note", 1, 3, "z.0", 0, 1)])
    assert fb.update() == 2
    assert out.sent == [[0xB0, 7, 64], [0x91, 3, 127]]
    clock.advance(0.02)
    assert fb.update() == 0
    values["psi"] = 1.0
    clock.advance(0.02)
    assert fb.update() == 1 and out.sent[-1] == [0xB0, 7, 127]


def test_feedback_suppresses_echo_then_corrects():
    values = {"psi": 0.0}
    fb, out, clock = make_feedback(values, [("cc", 0, 7, "psi", 0.0, 1.0)], echo_s=0.25)
    fb.update()
    out.sent.clear()
    fb.observe([ControlEvent("control_change", 0, 7, 100.0, clock.now(), "nano")])
    values["psi"] = 100 / 127
    clock.advance(0.1)
    assert fb.update() == 0  # the fader shows 100 already
    values["psi"] = 0.9  # e.g. takeover or a curve disagrees: corrected once the hand is off
    clock.advance(0.1)
    assert fb.update() == 0
    clock.advance(0.1)
    assert fb.update() == 1 and out.sent == [[0xB0, 7, round(0.9 * 127)]]


def test_feedback_throttle_and_round_robin():
    values = {f"z.{i}": 1.0 for i in range(10)}
    fb, out, clock = make_feedback(values, [("cc", 0, i, f"z.{i}") for i in range(10)],
                                   max_per_update=4, rate_per_s=1000.0)
    assert fb.update() == 4
    clock.advance(0.0015)  # one token back
    assert fb.update() == 1
    clock.advance(1.0)
    assert fb.update() == 4
    clock.advance(1.0)
    assert fb.update() == 1
    assert sorted(m[1] for m in out.sent) == list(range(10))


def test_feedback_resend_all_and_busy_output():
    values = {"psi": 0.5}
    fb, out, clock = make_feedback(values, [("cc", 0, 7, "psi")])
    fb.update()
    out.ok = False
    fb.resend_all()
    clock.advance(1)
    assert fb.update() == 0
    out.ok = True
    clock.advance(1)
    assert fb.update() == 1 and out.sent == [[0xB0, 7, 64], [0xB0, 7, 64]]


def test_feedback_binding_ranges():
    b = FeedbackBinding("pitchbend", 2, 0, "psi", 0.0, 2.0)
    assert b.message(b.raw(0.0)) == [0xE2, 0, 0] and b.message(b.raw(2.0)) == [0xE2, 0x7F, 0x7F]
    inv = FeedbackBinding("cc", 0, 1, "psi", 1.0, 0.0)
    assert inv.raw(1.0) == 0 and inv.raw(0.0) == 127 and inv.raw(float("nan")) == 0 and inv.raw(9) == 0
    with pytest.raises(ValueError, match="channel"):
        FeedbackBinding("cc", 16, 1, "psi")
    with pytest.raises(ValueError, match="kind"):
        FeedbackBinding("sysex", 0, 1, "psi")


def test_feedback_undoes_curve_and_invert():
    from ganinstrument.mapping.transforms import shape

    b = FeedbackBinding("cc", 0, 1, "psi", 0.3, 1.1, curve="exp", curve_k=4.0, invert=True)
    for raw in (0, 1, 40, 64, 100, 127):
        value = shape(raw / 127, lo=0.3, hi=1.1, curve_name="exp", k=4.0, inverted=True)
        assert b.raw(value) == raw


def test_feedback_from_mapping_bindings():
    from ganinstrument.mapping import parse_mapping
    from ganinstrument.state.params import Registry, TargetSpec

    registry = Registry.build([TargetSpec("psi", -1, 2, 1), TargetSpec("z.0", -3, 3, 0), TargetSpec("z.1", -3, 3, 0)],
                              [])
    mapping = parse_mapping("""\
schema_version: 1
bindings:
  - {cc: 7, target: psi, range: [0, 1], invert: true}
  - {note: 36, channel: 10, target: z.0, mode: toggle}
  - {cc: 16, encoder: twos_complement, target: z.1}
  - {pitchbend: true, target: z.1}
""", "m.yaml", registry)
    got = from_bindings(mapping.all_bindings(), registry)
    assert got == [FeedbackBinding("cc", 0, 7, "psi", 0.0, 1.0, invert=True),
                   FeedbackBinding("note", 9, 36, "z.0", -3.0, 3.0),
                   FeedbackBinding("pitchwheel", 0, 0, "z.1", -3.0, 3.0)]


def test_flood_from_a_thread_keeps_every_button_edge():
    """A backend thread delivering 10,000 messages/s (CCs, and a note edge every 50th) while the
    engine drains at ~60 fps: nothing dropped, every edge there, in order."""
    import threading
    import time

    backend = FakeBackend(["nano"])
    inp = MidiInput("nano", backend=backend)
    inp.ports.scan()
    total = 15000

    def play():
        t0 = time.monotonic()
        for i in range(total):
            if i % 50 == 0:
                backend.play("nano", 0x90, 60, 127 if (i // 50) % 2 == 0 else 0)
            else:
                backend.play("nano", 0xB0, i % 8, i % 128)
            if i % 100 == 99:
                time.sleep(max(0.0, t0 + (i + 1) / 10000 - time.monotonic()))

    player = threading.Thread(target=play)
    player.start()
    got = []
    while player.is_alive():
        got.extend(inp.drain())
        time.sleep(1 / 60)
    player.join()
    got.extend(inp.drain())
    assert inp.stats().dropped == 0 and len(got) == total
    edges = [e.value for e in got if e.kind == "note_on"]
    assert edges == [127.0 if k % 2 == 0 else 0.0 for k in range(total // 50)]
