"""Outputs that fail mid-show come back: a live recording that fails keeps what it recorded and
goes on in a new file beside it, never over one; an offline one does not reopen."""

from __future__ import annotations

import time

import av
import pytest
from test_outputs_recorder import frame

from ganinstrument.outputs.recorder import VideoRecorder, next_free_path
from ganinstrument.outputs.spec import open_sinks


class FailsOnce(VideoRecorder):
    """A real recorder whose writing fails once, at frame `fail_at` (a disk or encoder error)."""

    fail_at = 10

    def _write(self, item):
        if item[0].index == self.fail_at and not getattr(self, "failed", False):
            self.failed = True
            raise OSError(28, "No space left on device")
        super()._write(item)


def _frames(path):
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def test_a_live_recording_that_fails_goes_on_in_a_new_file_and_keeps_the_first(tmp_path):
    (tmp_path / "gig-2.mp4").write_bytes(b"someone else's file")
    rec = FailsOnce(tmp_path / "gig.mp4", crash_safe=True, reopen=True, on_full="wait")
    rec.open(64, 48, 30)
    for i in range(10):
        assert rec.submit(frame(i, i / 30))
    assert rec.wait_idle(10)
    rec.submit(frame(10, 10 / 30))  # fails
    deadline = time.monotonic() + 2
    while rec.stats.restarts == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.stats.restarts == 1, "not recording again within 2 s"
    for i in range(11, 31):
        assert rec.submit(frame(i, i / 30))
    assert rec.close(10)
    assert len(_frames(tmp_path / "gig.mp4")) == 10  # what came before the failure, playable
    assert (tmp_path / "gig-2.mp4").read_bytes() == b"someone else's file"  # never overwritten
    assert len(_frames(tmp_path / "gig-3.mp4")) == 20
    assert any("gig-3.mp4" in m for m in rec.messages)
    assert rec.stats.errors == 1


def test_offline_outputs_do_not_reopen(tmp_path):
    sinks = open_sinks(f"record:{tmp_path / 'out.mp4'},frames:{tmp_path / 'png'},null", 64, 48, 30,
                       offline=True)
    assert [s.restart for s in sinks] == [False, False, False]
    sinks.close()
    null = open_sinks("null", 64, 48, 30, offline=True).get("null")

    def broken(frame):
        raise OSError(5, "Input/output error")

    null._write = broken  # (a failure, as a disk would give it)
    null.submit(frame(0, 0.0))
    time.sleep(0.6)  # past the first two back-offs of a live output
    assert null.stats.errors == 1 and null.stats.restarts == 0 and not null.stats.enabled
    assert not null.submit(frame(1, 1 / 30))  # a render then fails: "writing the output failed"
    null.close()
    live = open_sinks(f"record:{tmp_path / 'live.mp4'}", 64, 48, 30)
    assert live.get("record").restart
    live.close()


@pytest.mark.parametrize("taken", [[], ["a-2.mp4"], ["a-2.mp4", "a-3.mp4"]])
def test_next_free_path_never_names_an_existing_file(tmp_path, taken):
    for name in taken:
        (tmp_path / name).write_bytes(b"x")
    free = next_free_path(tmp_path / "a.mp4")
    assert not free.exists() and free.name == f"a-{len(taken) + 2}.mp4"


def test_a_take_that_fails_goes_on_in_a_new_file_and_keeps_the_first(tmp_path, monkeypatch):
    from ganinstrument.outputs import takes as takes_module

    monkeypatch.setattr(takes_module, "VideoRecorder", FailsOnce)
    takes = takes_module.TakeRecorder(tmp_path, codec="libx264")
    takes.open(64, 48, 30)
    takes.toggle()
    deadline = time.monotonic() + 10
    while takes.status() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    taken = []
    for i in range(11):  # frame 10 fails
        taken.append(takes.submit(frame(i, i / 30)))
        time.sleep(0.005)
    deadline = time.monotonic() + 2
    while takes.stats.restarts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert takes.stats.restarts == 1, "the take is not recording again within 2 s"
    for i in range(11, 31):
        takes.submit(frame(i, i / 30))
        time.sleep(0.005)
    takes.toggle()
    assert takes.close()
    first, = (f for f in tmp_path.glob("take-*.mp4") if not f.stem.endswith("-2"))
    second = first.with_name(first.stem + "-2.mp4")
    assert sorted(tmp_path.glob("take-*.mp4")) == sorted([first, second])
    assert len(_frames(first)) == sum(taken[:10]) >= 8 and len(_frames(second)) == 20
    assert any(m.startswith("takes failed: OSError") for m in takes.messages)  # (the HUD's news)
    assert any(m == f"takes: recording goes on in {second.name}" for m in takes.messages)
