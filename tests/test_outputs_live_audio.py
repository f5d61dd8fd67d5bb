"""The live audio input in recordings (outputs/live_audio.py): the tap fans blocks out, and a
recording's track lines the sound up with the picture by the blocks' clock times, through gaps
and a drifting sound card. Files are written by the real recorder and decoded with PyAV."""

from __future__ import annotations

import logging
import time

import av
import numpy as np
import pytest
import torch

from ganinstrument.common.frame import Frame
from ganinstrument.outputs.live_audio import AudioTap, Feed
from ganinstrument.outputs.recorder import VideoRecorder

RATE, BLOCK, FPS = 48000, 256, 30
T0 = 1000.0  # the clock time of the recording's first frame


# -- the tap ----------------------------------------------------------------------------------
def test_the_tap_copies_each_block_to_every_listener_and_repairs_it():
    tap = AudioTap()
    tap.configure(44100, 3)
    assert tap.channels == 2 and tap.sample_rate == 44100
    block = np.full((4, 3), 0.25, np.float32)
    tap.push(block, 1.0)  # nobody listens: nothing kept, nothing copied
    assert not tap.wanted
    a, b = tap.subscribe(), tap.subscribe()
    block[0] = [np.nan, np.inf, 0.5]
    block[1] = [-3.0, 0.125, 0.125]
    tap.push(block, 2.0)
    block[:] = 0.0  # the worker reuses its block: the feeds hold copies
    (got_a,), (got_b,) = a.drain(), b.drain()
    assert got_a[0] == 2.0 and got_a[1] == 44100 and got_a[2] is got_b[2]
    np.testing.assert_array_equal(got_a[2], [[0.0, 1.0], [-1.0, 0.125], [0.25, 0.25], [0.25, 0.25]])
    tap.unsubscribe(a)
    tap.push(block, 3.0)
    assert a.drain() == [] and len(b.drain()) == 1


def test_a_full_feed_drops_its_oldest_blocks_and_counts_them():
    feed = Feed(max_blocks=3)
    for k in range(5):
        feed.put((float(k), RATE, None))
    assert [item[0] for item in feed.drain()] == [2.0, 3.0, 4.0] and feed.dropped == 2


# -- a recording's track ------------------------------------------------------------------------
def _bursts(times, channel_of):
    """A signal function: 1 kHz bursts 0.1 s long at clock `times`, each on its channel."""
    def signal(t):  # t: clock times [n] -> [n, 2]
        out = np.zeros((t.shape[0], 2), np.float32)
        for start in times:
            on = (t >= start) & (t < start + 0.1)
            out[on, channel_of(start)] = 0.5 * np.sin(2 * np.pi * 1000 * (t[on] - start))
        return out
    return signal


def _record(path, seconds, signal, *, crash_safe=False, card_speed=1.0, gap=None, tap=None,
            rate=RATE):
    """Record `seconds` of 64x64 frames at FPS from clock T0, with the audio input's blocks (of
    BLOCK samples at `rate`) pushed into the tap as they would arrive: from 0.1 s before the
    first frame, each stamped with the clock time of its first sample. `card_speed` < 1: the card's clock runs slow (its
    blocks' clock times spread out); `gap` (start, end): blocks lost between those clock times.
    Returns the recorder (closed)."""
    if tap is None:
        tap = AudioTap()
        tap.configure(rate, 2)
    rec = VideoRecorder(path, live_audio=tap, crash_safe=crash_safe, on_full="wait")
    rec.open(64, 64, FPS)
    pixels = torch.zeros(64, 64, 3, dtype=torch.uint8)
    block_s = BLOCK / rate / card_speed  # one block's length on the computer's clock
    j, first = 0, T0 - 0.1
    for k in range(round(seconds * FPS)):
        now = T0 + k / FPS
        while first + (j + 1) * block_s <= now:
            start = first + j * block_s
            j += 1
            if gap and gap[0] <= start < gap[1]:
                continue
            tap.push(signal(start + np.arange(BLOCK) / rate * (1 / card_speed)), start)
        rec.submit(Frame(pixels, now, k))
        time.sleep(0.001)
    assert rec.close(30)
    return rec


def _decode(path):
    """(video frame times [n], audio [channels, samples], audio start s, audio rate)."""
    with av.open(str(path)) as c:
        times = np.array([float(f.pts * f.time_base) for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        assert stream.codec_context.name == "aac"
        frames = list(c.decode(stream))
    audio = np.concatenate([f.to_ndarray() for f in frames], axis=1)
    return times, audio, float(frames[0].pts * frames[0].time_base), frames[0].sample_rate


def _onset(audio, channel, start_s, rate, after_s=0.0):
    loud = np.flatnonzero(np.abs(audio[channel]) > 0.05)
    loud = loud[loud / rate + start_s >= after_s]
    return start_s + loud[0] / rate


@pytest.mark.parametrize("crash_safe", [False, True], ids=["mp4", "fragmented-mp4"])
def test_the_sound_lines_up_with_the_picture_it_was_heard_with(tmp_path, crash_safe):
    path = tmp_path / "take.mp4"
    _record(path, 3.0, _bursts([T0 + 1.0, T0 + 2.0], lambda s: 0 if s < T0 + 1.5 else 1),
            crash_safe=crash_safe)
    times, audio, start, rate = _decode(path)
    assert len(times) == 90 and audio.shape[0] == 2 and rate == RATE
    # Frame 30 was made at clock T0 + 1.0 and frame 60 at T0 + 2.0: the bursts heard then
    # start where those frames are shown (left channel first, then right).
    assert _onset(audio, 0, start, rate) == pytest.approx(times[30], abs=0.002)
    assert _onset(audio, 1, start, rate) == pytest.approx(times[60], abs=0.002)
    assert np.abs(audio[1][: int(1.5 * rate)]).max() < 0.05  # nothing leaked across channels
    assert audio.shape[1] / rate == pytest.approx(3.0, abs=0.05)  # as long as the picture


def test_lost_blocks_leave_silence_and_the_rest_stays_in_place(tmp_path, caplog):
    path = tmp_path / "gap.mp4"
    with caplog.at_level(logging.INFO, logger="ganinstrument.outputs.live_audio"):
        rec = _record(path, 3.0, _bursts([T0 + 0.5, T0 + 2.0], lambda s: 0), gap=(T0 + 1.0, T0 + 1.3))
    track = rec.audio_track
    assert track.resyncs == 1 and track.silence_s == pytest.approx(0.3, abs=0.01)
    assert "re-aligned 1 times" in caplog.text
    times, audio, start, rate = _decode(path)
    assert _onset(audio, 0, start, rate) == pytest.approx(times[15], abs=0.002)
    assert _onset(audio, 0, start, rate, after_s=1.5) == pytest.approx(times[60], abs=0.002)
    gap = audio[0][int(1.02 * rate):int(1.28 * rate)]
    assert np.abs(gap).max() < 1e-3  # (AAC: not bit-exact zero)


def test_a_slow_sound_card_is_followed_by_slipping_samples_not_jumps(tmp_path):
    # 0.25% slow: 30 ms behind the clock after 12 s if nothing followed it
    path = tmp_path / "drift.mp4"
    rec = _record(path, 12.0, _bursts([T0 + 11.0], lambda s: 1), card_speed=0.9975)
    track = rec.audio_track
    assert track.resyncs == 0 and track.slips > 100
    times, audio, start, rate = _decode(path)
    assert abs(_onset(audio, 1, start, rate) - times[330]) < 0.012  # within the dead band (10 ms)


def test_without_a_running_audio_input_the_recording_is_picture_only(tmp_path, caplog):
    tap = AudioTap()  # never configured: no input opened
    path = tmp_path / "quiet.mp4"
    with caplog.at_level(logging.INFO, logger="ganinstrument.outputs.recorder"):
        rec = _record(path, 0.5, _bursts([], lambda s: 0), tap=tap)
    assert rec.audio_track is None and not tap.wanted  # it stopped listening
    assert "no audio input is running" in caplog.text
    with av.open(str(path)) as c:
        assert not c.streams.audio and c.streams.video[0].frames == 15


def test_an_input_that_never_delivers_gives_a_silent_track_as_long_as_the_picture(tmp_path):
    tap = AudioTap()
    tap.configure(RATE, 1)  # running, but no block ever comes (a stalled device)
    rec = VideoRecorder(tmp_path / "stalled.mp4", live_audio=tap, on_full="wait")
    rec.open(64, 64, FPS)
    for k in range(30):
        rec.submit(Frame(torch.zeros(64, 64, 3, dtype=torch.uint8), T0 + k / FPS, k))
    assert rec.close(10)
    times, audio, start, rate = _decode(tmp_path / "stalled.mp4")
    assert audio.shape[0] == 1 and audio.shape[1] / rate == pytest.approx(1.0, abs=0.03)
    assert np.abs(audio).max() < 1e-4
