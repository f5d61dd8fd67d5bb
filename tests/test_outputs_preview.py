"""The preview window through real OpenGL: Mesa under a private Xvfb server, read back with an
X screenshot (xwd) of the window, keys typed with xdotool (XTEST), as a performer would."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest
import torch

from ganinstrument.common.frame import Frame
from ganinstrument.outputs import SinkError, open_sinks
from ganinstrument.outputs.preview import PreviewSink, format_hud

TOOLS = ("Xvfb", "xdotool", "xwd")
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(scope="module")
def xvfb():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install the Debian packages in "
                    ".ci/apt-packages (xvfb, xdotool, x11-apps)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                               "640x480x24", "-nolisten", "tcp"], pass_fds=(write_fd,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # Xvfb writes its display number once it is ready
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield os.environ["DISPLAY"]
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old
    server.terminate()
    server.wait(5)


def quadrants(size: int = 64) -> np.ndarray:
    """Red, green / blue, white quadrants: [H, W, 3] uint8."""
    img = np.zeros((size, size, 3), np.uint8)
    half = size // 2
    img[:half, :half], img[:half, half:] = RED, GREEN
    img[half:, :half], img[half:, half:] = BLUE, WHITE
    return img


def screenshot(window_id: int) -> np.ndarray:
    """The window's pixels as the X server has them: [H, W, 3] uint8, from xwd's format."""
    data = subprocess.run(["xwd", "-silent", "-id", str(window_id)], check=True,
                          capture_output=True, timeout=10).stdout
    header = struct.unpack(">25I", data[:100])
    header_size, width, height = header[0], header[4], header[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = header[7], header[11], header[12], \
        header[19]
    assert bits_per_pixel == 32, header
    start = header_size + 12 * ncolors
    pixels = np.frombuffer(data[start:start + height * bytes_per_line],
                           "<u4" if byte_order == 0 else ">u4")
    pixels = pixels.reshape(height, bytes_per_line // 4)[:, :width]
    red_mask, green_mask, blue_mask = header[14:17]
    return np.stack([(pixels & m) >> (int(m).bit_length() - 8)
                     for m in (red_mask, green_mask, blue_mask)], -1).astype(np.uint8)


def eventually(check, timeout_s: float = 5.0):
    """Poll `check` until it returns something other than None/False (the screen lags)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if (result is not None and result is not False) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def press(window_id: int, *keys: str) -> None:
    subprocess.run(["xdotool", "windowfocus", "--sync", str(window_id)], check=True, timeout=10)
    subprocess.run(["xdotool", "key", *keys], check=True, timeout=10)


def near(pixel, colour, tol: int = 8) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= tol))


def test_preview_shows_the_frame_and_hud_and_answers_keys(xvfb):
    actions: list[str] = []
    preview = PreviewSink(title="ganinstrument-test", size=(256, 256), on_action=actions.append,
                          hud=lambda: {"fps": 59.94, "dropped": 3})
    preview.set_hud({"error": "midi: unplugged"})
    preview.open(64, 64, 30)
    try:
        assert preview.submit(Frame(torch.from_numpy(quadrants()), 0.0, 0))
        assert preview.wait_idle(5)
        wid = preview.window_id

        def frame_shown():
            shot = screenshot(wid)
            ok = shot.shape == (256, 256, 3) and near(shot[64, 192], GREEN) and \
                near(shot[192, 64], BLUE) and near(shot[192, 192], WHITE) and \
                near(shot[110, 110], RED)
            return shot if ok else None

        shot = eventually(frame_shown)
        assert shot is not None, "the frame did not appear in the window"
        hud = shot[:50, :100].astype(int)  # top-left: three lines of text on a dark box
        assert (hud.min(-1) > 200).any(), "no light HUD text"
        assert (hud[..., 0] < 130).any(), "no dark HUD box over the red quadrant"

        press(wid, "h")  # HUD off
        assert eventually(lambda: "hud.toggle" in actions)
        assert eventually(lambda: near(screenshot(wid)[:50, :100].reshape(-1, 3).min(0),
                                       RED, 10) and
                          near(screenshot(wid)[:50, :100].reshape(-1, 3).max(0), RED, 10))
        press(wid, "Right", "b")
        assert eventually(lambda: actions[-2:] == ["preset.next", "panic.blackout"])
        assert not preview.closed.is_set()
        press(wid, "Escape")
        assert preview.closed.wait(5) and actions[-1] == "quit"
    finally:
        t0 = time.monotonic()
        assert preview.close(5)
        assert time.monotonic() - t0 < 5
    assert preview.stats.errors == 0 and preview.stats.written == 1


def test_latest_frame_replaces_the_previous_one(xvfb):
    preview = PreviewSink(title="ganinstrument-test2", size=(128, 128), show_hud=False)
    preview.open(32, 32, 30)
    try:
        for colour in (RED, GREEN, BLUE):
            img = np.zeros((32, 32, 3), np.uint8)
            img[:] = colour
            preview.submit(Frame(torch.from_numpy(img), 0.0, 0))
        preview.wait_idle(5)
        assert eventually(lambda: near(screenshot(preview.window_id)[64, 64], BLUE))
    finally:
        assert preview.close(5)


def test_fullscreen_on_a_missing_monitor_says_how_many_there_are(xvfb):
    with pytest.raises(SinkError, match=r"monitor 3 not found \(1 connected"):
        PreviewSink(monitor=3).open(64, 64, 30)
    sinks = open_sinks("preview:monitor=0:nohud", 64, 64, 30)  # the whole Xvfb screen
    try:
        sinks.submit(Frame(torch.from_numpy(quadrants()), 0.0, 0))
        preview = sinks.get("preview")
        preview.wait_idle(5)

        def whole_screen():
            shot = screenshot(preview.window_id)
            ok = shot.shape == (480, 640, 3) and near(shot[360, 400], WHITE)
            return shot if ok else None

        shot = eventually(whole_screen)
        assert shot is not None
        assert near(shot[240, 20], (0, 0, 0))  # letterboxed: black bars at the sides
    finally:
        assert sinks.close(5)


def test_hud_formatting():
    assert format_hud({"fps": 59.9412, "frame ms": 16.0, "pickup": None, "z.3": "waiting"}) == [
        ("fps", "59.94"), ("frame ms", "16"), ("pickup", "-"), ("z.3", "waiting")]
