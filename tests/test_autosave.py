"""Autosave: snapshots on the caller's thread at most every `every_s`, written by a thread."""

from __future__ import annotations

import time

import pytest

from ganinstrument.commands.autosave import Autosave
from ganinstrument.instrument.facade import Instrument
from ganinstrument.state.presets import load_preset_file


@pytest.fixture(scope="module")
def inst():
    return Instrument("demo", device="cpu")


def wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_saves_the_look_every_period_and_once_more_on_close(inst, tmp_path):
    path = tmp_path / "auto" / "autosave.yaml"
    saver = Autosave(inst, path, every_s=2.0)
    inst.set("psi", 0.3, immediate=True)
    saver.tick(10.0)
    assert wait_for(lambda: saver.saved == 1)
    assert load_preset_file(path).targets["psi"] == pytest.approx(0.3)
    inst.set("psi", 0.6, immediate=True)
    saver.tick(11.0)                                  # within the period: nothing new
    time.sleep(0.1)
    assert saver.saved == 1 and load_preset_file(path).targets["psi"] == pytest.approx(0.3)
    saver.tick(12.0)
    assert wait_for(lambda: saver.saved == 2)
    assert load_preset_file(path).targets["psi"] == pytest.approx(0.6)
    inst.set("psi", 0.9, immediate=True)
    assert saver.close()
    assert load_preset_file(path).targets["psi"] == pytest.approx(0.9)
    assert not list(path.parent.glob(".*.tmp"))


def test_a_place_it_cannot_write_is_said_once_and_the_show_goes_on(inst, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    saver = Autosave(inst, blocker / "autosave.yaml", every_s=0.0)
    for t in range(3):
        saver.tick(float(t))
        assert wait_for(lambda: saver.failures == t + 1)
    assert saver.close()
    assert sum("autosave" in r.message for r in caplog.records) == 1
