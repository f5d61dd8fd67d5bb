"""Preset actions as an adversary sends them: floods of saves and recalls over OSC and program
changes, junk slot numbers, hostile preset folders. The invariants: the engine thread never
touches the disk for a preset, a burst of recalls plays once, every refusal is one line, no
file is lost or half-written, and saved files get the user's permissions."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ganinstrument.common.events import ControlEvent, ParamUpdate
from ganinstrument.common.reporting import Quiet
from ganinstrument.engine.loop import Engine
from ganinstrument.instrument.facade import Instrument
from ganinstrument.outputs.base import Sinks
from ganinstrument.outputs.null import NullSink
from ganinstrument.sources.osc import OscServer

_DISK_EVENTS = ("open", "os.scandir", "os.rename", "os.remove", "os.listdir", "os.mkdir")
_audit: dict = {"thread": None, "root": None, "seen": []}


def _hook(event, args):
    if _audit["thread"] != threading.get_ident() or event not in _DISK_EVENTS or not args:
        return
    path = args[0]
    if isinstance(path, (str, bytes, os.PathLike)) and str(os.fsdecode(path)).startswith(_audit["root"]):
        _audit["seen"].append((event, os.fsdecode(path)))


@pytest.fixture
def audit():
    """Disk access by one thread to one folder, seen through Python's audit hooks (installed
    once: they cannot be removed; idle, the hook returns at once)."""
    if not _audit.get("installed"):
        sys.addaudithook(_hook)
        _audit["installed"] = True
    _audit.update(thread=None, root=None, seen=[])
    yield _audit
    _audit["thread"] = None


@pytest.fixture
def inst(tmp_path):
    return Instrument("demo", device="cpu", mapping="generic", presets_dir=tmp_path / "presets")


def _run_engine(engine):
    """Run the engine on a thread of its own, watched for disk access to the presets folder."""
    started = threading.Event()

    def run():
        _audit["thread"] = threading.get_ident()
        started.set()
        engine.run()

    thread = threading.Thread(target=run, name="engine")
    thread.start()
    assert started.wait(5)
    return thread


def _timed_input(engine) -> list[float]:
    """Seconds each frame spent on its controls (the part a flood can slow down)."""
    spent: list[float] = []
    engine.on_frame.append(lambda frame, times: spent.append(times.input_s))
    return spent


def test_a_flood_of_saves_and_recalls_over_osc_leaves_the_engine_thread_off_the_disk(inst, tmp_path, audit):
    from pythonosc.udp_client import SimpleUDPClient

    presets = tmp_path / "presets"
    audit["root"] = str(presets)
    inst.bank.start()  # (as perform does before the show: the folder's first read)
    osc = OscServer(inst.registry, port=0).start()
    sink = NullSink(queue_size=1)
    sink.open(256, 256, 30)
    engine = Engine(inst, controls=[osc], sinks=Sinks([sink]), fps=30, trim_heap_s=None)
    spent = _timed_input(engine)
    recalls = []
    real_recall = inst.recall
    inst.recall = lambda *a, **k: recalls.append(len(spent)) or real_recall(*a, **k)
    thread = _run_engine(engine)
    try:
        client = SimpleUDPClient("127.0.0.1", osc.port)
        for k in range(500):
            inst_psi = 0.1 + (k % 5) * 0.2
            client.send_message("/ganinstrument/psi", inst_psi)
            client.send_message("/ganinstrument/preset.save", 1 + k % 5)
        for k in range(500):
            client.send_message("/ganinstrument/preset.recall", 1 + k % 5)

        def taken():  # (UDP on loopback may lose some of a burst: wait until nothing more comes)
            st = osc.stats()
            return st.received + st.dropped + st.rejected, st.queued

        deadline = time.monotonic() + 20
        last = None
        while time.monotonic() < deadline:
            now = taken()
            if now == last and now[1] == 0:
                break
            last = now
            time.sleep(0.3)
        frames = len(spent)
        while len(spent) < frames + 2 and time.monotonic() < deadline:  # the last ones applied
            time.sleep(0.02)
    finally:
        engine.request_stop()
        thread.join(30)
        _audit["thread"] = None
    assert not thread.is_alive()
    assert audit["seen"] == [], "the engine thread touched the presets folder"
    assert engine.stats.errors == 0 and max(spent) < 0.1, f"input took {max(spent):.3f} s in one frame"
    assert len(recalls) == len(set(recalls)), "a frame played more than one recall"
    # Every save landed whole, with the user's permissions, and no temp file was left.
    names = sorted(p.name for p in presets.iterdir())
    assert names == ["01.yaml", "02.yaml", "03.yaml", "04.yaml", "05.yaml"]
    umask = os.umask(0)
    os.umask(umask)
    for p in presets.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
        assert "schema_version: 1" in p.read_text()


def test_a_program_change_flood_plays_one_recall_per_frame_and_the_last_one_wins(inst, tmp_path, audit):
    presets = tmp_path / "presets"
    for slot in range(1, 6):
        inst.set("psi", slot / 10, immediate=True)
        inst.trigger("preset.save", slot)
    events = [ControlEvent("program_change", number=p % 5, source="flood") for p in range(3000)] + \
        [ControlEvent("program_change", number=2, source="flood")]

    class Flood(Quiet):  # a source with drain(): 3001 program changes arrive in one frame
        def __init__(self):
            self.batches = [events]

        def drain(self):
            return self.batches.pop() if self.batches else []

    inst.set("psi", 0.9, immediate=True)
    engine = Engine(inst, controls=[Flood()], router=inst.controls.router, fps=None, max_frames=3,
                    trim_heap_s=None)
    spent = _timed_input(engine)
    recalls = []
    real_recall = inst.looks.recall  # (where the controller's recalls land)
    inst.looks.recall = lambda preset, source, morph_s=0.0: recalls.append(Path(source).name) or \
        real_recall(preset, source, morph_s)
    inst.bank.start()
    audit.update(root=str(presets), thread=threading.get_ident())
    engine.run()
    audit["thread"] = None
    assert recalls == ["03.yaml"]  # program 2 on the wire is slot 3 (generic: offset 1)
    assert inst.get("psi") == pytest.approx(0.3)
    assert max(spent) < 0.1, f"input took {max(spent):.3f} s in one frame"
    assert audit["seen"] == []


@pytest.mark.parametrize("slot", [-1, 0, 1000, 1_000_000_000, 2.5, float("nan"), float("inf")])
def test_junk_slot_numbers_are_refused_in_one_line_and_make_no_file(inst, tmp_path, slot):
    for action in ("preset.save", "preset.recall"):
        assert not inst.apply(ParamUpdate(action, slot, action=True, source="OSC 127.0.0.1:9"))
        warning = inst.warnings[-1]
        assert "OSC 127.0.0.1:9" in warning and "from 1 to 999" in warning and "\n" not in warning
    assert not (tmp_path / "presets").exists() or list((tmp_path / "presets").iterdir()) == []


def test_a_save_keeps_the_mode_of_the_file_it_replaces_and_follows_the_umask(inst, tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "02 dusk.yaml").write_text("schema_version: 1\n")
    os.chmod(presets / "02 dusk.yaml", 0o604)
    old = os.umask(0o027)
    try:
        inst.trigger("preset.save", 1)
        inst.trigger("preset.save", 2)
    finally:
        os.umask(old)
    assert stat.S_IMODE((presets / "01.yaml").stat().st_mode) == 0o640
    assert stat.S_IMODE((presets / "02 dusk.yaml").stat().st_mode) == 0o604


def test_a_folder_that_refuses_saves_says_so_once_and_the_look_stays_recallable(inst, tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "03.yaml").mkdir()  # a folder where slot 3's file would go
    inst.bank.start()
    try:
        inst.set("psi", 0.4, immediate=True)
        with inst.batch():
            inst.apply(ParamUpdate("preset.save", 3, action=True, source="pad"))
        inst.set("psi", 1.2, immediate=True)
        deadline = time.monotonic() + 5
        while not any("not saved" in w for w in inst.warnings) and time.monotonic() < deadline:
            inst.step(0.01)
            time.sleep(0.01)
        warning = next(w for w in inst.warnings if "not saved" in w)
        assert "03.yaml" in warning and "kept for this show" in warning
        inst.trigger("preset.recall", 3)  # the look is in the bank even though the disk said no
        assert inst.get("psi") == pytest.approx(0.4)
    finally:
        inst.bank.close()
    assert (presets / "03.yaml").is_dir() and not list((presets / "03.yaml").iterdir())
    assert sorted(p.name for p in presets.iterdir()) == ["03.yaml"]  # no temp file left


def test_the_presets_worker_survives_a_failure_of_its_own_and_says_so(inst, tmp_path, monkeypatch):
    import ganinstrument.state.preset_bank as preset_bank

    real_save = preset_bank.save_preset_file
    calls = []

    def save_once_broken(path, preset):
        calls.append(path)
        if len(calls) == 1:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_save(path, preset)

    monkeypatch.setattr(preset_bank, "save_preset_file", save_once_broken)
    inst.bank.start()
    try:
        inst.trigger("preset.save", 1)
        deadline = time.monotonic() + 5
        while not inst.bank.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "UnicodeEncodeError" in inst.bank.errors[0] and "01.yaml" in inst.bank.errors[0]
        inst.trigger("preset.save", 2)  # the worker is still there
    finally:
        assert inst.bank.close()
    assert (tmp_path / "presets" / "02.yaml").is_file()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a read-only mount needs root and unshare (CI has both)")
def test_a_read_only_presets_folder_refuses_saves_in_one_line_and_keeps_its_files(tmp_path):
    """Mounted read-only in a private mount namespace (root here bypasses file modes)."""
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "01 calm.yaml").write_text("schema_version: 1\ntargets: {psi: 0.5}\n")
    script = textwrap.dedent(f"""
        import sys
        from ganinstrument.state.preset_bank import PresetBank
        from ganinstrument.state.presets import Preset
        bank = PresetBank({str(presets)!r}).start()
        bank.save(bank.path_for_save(1), Preset(targets={{"psi": 1.0}}))
        bank.save(bank.path_for_save(2), Preset(targets={{"psi": 2.0}}))
        assert bank.get(bank.slot_path(2)).targets["psi"] == 2.0  # kept in memory at once
        bank.close()
        print("\\n".join(bank.errors))
    """)
    mount = f"mount --bind {presets} {presets} && mount -o remount,bind,ro {presets} && "
    result = subprocess.run(["unshare", "-m", "sh", "-c", mount + 'exec "$0" -c "$1"', sys.executable, script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    errors = result.stdout.strip().splitlines()
    assert len(errors) == 2 and all("Read-only file system" in e and str(presets) in e for e in errors)
    assert sorted(p.name for p in presets.iterdir()) == ["01 calm.yaml"]
    assert (presets / "01 calm.yaml").read_text() == "schema_version: 1\ntargets: {psi: 0.5}\n"
