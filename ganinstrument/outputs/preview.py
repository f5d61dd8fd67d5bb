"""The preview window: the newest frame scaled to the window, a HUD, and keyboard shortcuts.

glfw + moderngl, all on the preview's own thread: the window, its GL context, event polling
and drawing. The engine only submits frames (latest wins) and HUD values; keys come back as
action names through `on_action` (called on the preview thread: keep it short, e.g. put the
action on the engine's queue). Closing the window, or the quit key, sets `closed` and sends
"quit": the engine decides what quitting means.

The HUD is text drawn with Pillow into a texture, redrawn only when its text changes.
On macOS a window must live on the main thread, which this design does not give; there the
preview is reported unavailable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import numpy as np

from ..common.text import visible
from .base import SinkError, SinkUnavailableError, ThreadedSink

log = logging.getLogger(__name__)

# glfw key name (the suffix of glfw.KEY_*, lower case) -> action.
DEFAULT_KEYS: dict[str, str] = {
    "escape": "quit",
    "space": "panic.freeze",
    "b": "panic.blackout",
    "r": "record.toggle",
    "right": "preset.next",
    "page_down": "preset.next",
    "left": "preset.prev",
    "page_up": "preset.prev",
    "h": "hud.toggle",
    "f": "fullscreen.toggle",
}
HUD_FONT_PX = 14
HUD_COLOURS = {"error": (255, 90, 90, 255), "rec": (255, 60, 60, 255), "pickup": (255, 210, 80, 255),
               "takeover": (255, 210, 80, 255)}

_VERTEX = """
#version 330
in vec2 in_pos;
in vec2 in_uv;
out vec2 uv;
void main() { uv = in_uv; gl_Position = vec4(in_pos, 0.0, 1.0); }
"""
_FRAGMENT = """
#version 330
uniform sampler2D tex;
in vec2 uv;
out vec4 colour;
void main() { colour = texture(tex, uv); }
"""
# A full-viewport quad; v is flipped because image row 0 is the top, GL's row 0 the bottom.
_QUAD = np.array([-1, -1, 0, 1, 1, -1, 1, 1, -1, 1, 0, 0, 1, 1, 1, 0], dtype="f4")


HUD_ENTRY_LINES = 3  # screen lines one HUD entry may wrap onto (the last ends in "…")
HUD_MAX_ENTRIES = 16


def format_hud(values: Mapping[str, object]) -> list[tuple[str, str]]:
    """(key, text) lines: floats to 4 significant digits, None as '-', any other value as
    text with control characters made visible (a newline in an OSC address is `\\n`)."""
    lines = []
    for key, value in list(values.items())[:HUD_MAX_ENTRIES]:
        if value is None:
            text = "-"
        elif isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = visible(value)
        lines.append((visible(key), text))
    return lines


def render_hud(lines: list[tuple[str, str]], font=None, max_width: int | None = None) -> np.ndarray:
    """The HUD as an RGBA image [H, W, 4] of `format_hud`'s lines: text on a translucent dark
    box, at most `max_width` pixels wide (long entries wrap onto up to HUD_ENTRY_LINES lines,
    then are cut)."""
    from PIL import Image, ImageDraw

    if font is None:
        font = hud_font()
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    room = max(40, (max_width or 1 << 16) - 12)
    rows = []  # (key, one screen line)
    for key, text in lines:
        for piece in wrap_text(f"{key}: {text}", lambda t: measure.textlength(t, font=font),
                               room, HUD_ENTRY_LINES):
            rows.append((key, piece))
    line_h = HUD_FONT_PX + 4
    width = 12 + max(int(measure.textlength(t, font=font)) for _, t in rows)
    height = 8 + line_h * len(rows)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 170))
    draw = ImageDraw.Draw(img)
    for i, (key, text) in enumerate(rows):
        colour = next((c for k, c in HUD_COLOURS.items() if key.startswith(k)),
                      (255, 255, 255, 255))
        draw.text((6, 4 + i * line_h), text, font=font, fill=colour)
    return np.asarray(img)


def wrap_text(text: str, width_of: Callable[[str], float], room: float, max_lines: int) -> list[str]:
    """`text` (one line, no control characters) broken into lines at most `room` wide by
    `width_of`, at spaces where there is one in the second half of a line; at most
    `max_lines`, the last one ending in "…" if text was left over."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines:
        if width_of(rest) <= room:
            lines.append(rest)
            return lines
        low, high = 1, len(rest)  # the longest prefix that fits (at least one character)
        while low < high:
            mid = (low + high + 1) // 2
            if width_of(rest[:mid]) <= room:
                low = mid
            else:
                high = mid - 1
        space = rest.rfind(" ", 0, low + 1)
        cut = space if space > low // 2 else low
        lines.append(rest[:cut].rstrip())
        rest = "  " + rest[cut:].lstrip()
    if rest.strip():
        last = lines[-1]
        while last and width_of(last + "…") > room:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def hud_font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=HUD_FONT_PX)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _key_codes(glfw, keys: Mapping[str, str]) -> dict[int, str]:
    codes = {}
    for name, action in keys.items():
        code = getattr(glfw, "KEY_" + name.upper(), None)
        if code is None:
            raise ValueError(f"preview: unknown key {name!r} (glfw key names: escape, space, "
                             "a..z, 0..9, left, right, page_up, f1..f12, ...)")
        codes[code] = action
    return codes


class PreviewSink(ThreadedSink):
    """A window showing the newest submitted frame, with a HUD and keyboard shortcuts.

    `hud()` (called on the preview thread, about 30 times a second) and `set_hud(values)`
    (from any thread) supply the HUD's lines; `set_hud` values are shown after `hud()`'s.
    `monitor` picks a screen (0 = primary) and implies full screen; `size` sets the window.
    """

    tick_s = 1 / 30  # how often events are polled and the HUD redrawn with no new frame

    def __init__(self, *, name: str = "preview", title: str = "ganinstrument",
                 fullscreen: bool = False, monitor: int | None = None,
                 size: tuple[int, int] | None = None, vsync: bool = False,
                 hud: Callable[[], Mapping[str, object]] | None = None, show_hud: bool = True,
                 on_action: Callable[[str], None] | None = None,
                 keys: Mapping[str, str] | None = None):
        super().__init__(name, queue_size=1)
        self.title = title
        self.fullscreen = fullscreen or monitor is not None
        self.monitor = monitor or 0
        self.size = size
        self.vsync = vsync
        self.show_hud = show_hud
        self.keys = dict(DEFAULT_KEYS if keys is None else keys)
        self._hud_fn = hud
        self._on_action = on_action
        self._hud_values: Mapping[str, object] = {}
        self._hud_lock = threading.Lock()
        self.closed = threading.Event()  # set when the window is closed or quit is pressed
        self.window_id: int | None = None  # the X11 window id where there is one (tests, tools)
        # Owned by the preview thread:
        self._glfw = self._window = self._ctx = None
        self._prog = self._vbo = self._frame_vao = self._frame_tex = self._hud_tex = None
        self._hud_text: tuple | None = None
        self._codes: dict[int, str] = {}
        self._font = None
        self._windowed_rect = (100, 100, 640, 480)

    shows_hud = True

    def window_closed(self) -> bool:
        return self.closed.is_set()

    def set_hud(self, values: Mapping[str, object]) -> None:
        """Replace the HUD values that come from outside `hud()` (any thread)."""
        with self._hud_lock:
            self._hud_values = dict(values)

    # -- preview thread ----------------------------------------------------------------

    def _start(self) -> None:
        try:
            import glfw
            import moderngl
        except ImportError as err:
            raise SinkUnavailableError(
                f"preview: {err.name} is not installed (pip install ganinstrument[preview])"
            ) from err
        self._glfw = glfw
        self._codes = _key_codes(glfw, self.keys)
        if not glfw.init():
            raise SinkUnavailableError(f"preview: no display ({_glfw_error(glfw)})")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        monitor = None
        if self.fullscreen:
            monitors = glfw.get_monitors() or []
            if self.monitor >= len(monitors):
                raise SinkError(f"preview: monitor {self.monitor} not found "
                                f"({len(monitors)} connected, numbered from 0)")
            monitor = monitors[self.monitor]
            mode = glfw.get_video_mode(monitor)
            width, height = mode.size.width, mode.size.height
        else:
            width, height = self.size or _window_size(self.width, self.height)
        window = glfw.create_window(width, height, self.title, monitor, None)
        if not window:
            raise SinkError(f"preview: cannot open a window ({_glfw_error(glfw)})")
        self._window = window
        glfw.make_context_current(window)
        glfw.swap_interval(1 if self.vsync else 0)
        glfw.set_key_callback(window, self._on_key)
        try:
            self.window_id = glfw.get_x11_window(window)
        except Exception:  # not X11 (Windows, Wayland)
            self.window_id = None
        ctx = moderngl.create_context()
        self._ctx = ctx
        self._prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._vbo = ctx.buffer(_QUAD.tobytes())
        self._frame_vao = ctx.vertex_array(self._prog, [(self._vbo, "2f 2f", "in_pos", "in_uv")])
        self._frame_tex = self._texture(self.width, self.height, 3)
        self._frame_tex.write(np.zeros((self.height, self.width, 3), np.uint8).tobytes())
        if self.show_hud:
            self._font = _try_font()
        self._draw()

    def _texture(self, width: int, height: int, components: int):
        import moderngl

        tex = self._ctx.texture((width, height), components, alignment=1)
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False  # clamp: no bleed from the opposite edge
        return tex

    def _write(self, frame) -> None:
        img = frame.image  # [H, W, 3] uint8
        height, width = img.shape[:2]
        if self._frame_tex.size != (width, height):
            self._frame_tex.release()
            self._frame_tex = self._texture(width, height, 3)
        self._frame_tex.write(np.ascontiguousarray(img).tobytes())
        self._draw()

    def _tick(self) -> None:
        self._draw()

    def _draw(self) -> None:
        glfw, ctx = self._glfw, self._ctx
        glfw.poll_events()
        if glfw.window_should_close(self._window) and not self.closed.is_set():
            self._action("quit")
        fb_w, fb_h = glfw.get_framebuffer_size(self._window)
        if fb_w == 0 or fb_h == 0:  # minimised
            return
        ctx.viewport = (0, 0, fb_w, fb_h)
        ctx.clear(0.0, 0.0, 0.0)
        ctx.viewport = _letterbox(self._frame_tex.size, (fb_w, fb_h))
        self._frame_tex.use(0)
        self._frame_vao.render(mode=self._ctx_mode("TRIANGLE_STRIP"))
        if self.show_hud and self._font is not None:
            self._draw_hud(fb_w, fb_h)
        glfw.swap_buffers(self._window)

    def _ctx_mode(self, name: str):
        import moderngl

        return getattr(moderngl, name)

    def _draw_hud(self, fb_w: int, fb_h: int) -> None:
        values: dict[str, object] = {}
        if self._hud_fn is not None:
            try:
                values.update(self._hud_fn())
            except Exception as err:  # a broken HUD source must not take the picture down
                values["error"] = f"hud: {err}"
        with self._hud_lock:
            values.update(self._hud_values)
        lines = format_hud(values)
        if not lines:
            return
        if (lines, fb_w) != self._hud_text:
            rgba = render_hud(lines, self._font, max_width=fb_w)
            if self._hud_tex is not None:
                self._hud_tex.release()
            self._hud_tex = self._texture(rgba.shape[1], rgba.shape[0], 4)
            self._hud_tex.write(rgba.tobytes())
            self._hud_text = (lines, fb_w)
        w, h = self._hud_tex.size
        ctx = self._ctx
        ctx.viewport = (0, fb_h - h, w, h)  # top-left corner, 1:1 pixels
        ctx.enable(self._ctx_mode("BLEND"))
        ctx.blend_func = self._ctx_mode("SRC_ALPHA"), self._ctx_mode("ONE_MINUS_SRC_ALPHA")
        self._hud_tex.use(0)
        self._frame_vao.render(mode=self._ctx_mode("TRIANGLE_STRIP"))
        ctx.disable(self._ctx_mode("BLEND"))

    def _on_key(self, window, key, scancode, action, mods) -> None:
        if action != self._glfw.PRESS:
            return
        name = self._codes.get(key)
        if name is not None:
            self._action(name)

    def _action(self, name: str) -> None:
        if name == "hud.toggle":
            self.show_hud = not self.show_hud
            if self.show_hud and self._font is None:
                self._font = _try_font()
        elif name == "fullscreen.toggle":
            self._toggle_fullscreen()
        elif name == "quit":
            self.closed.set()
        if self._on_action is not None:
            try:
                self._on_action(name)
            except Exception:
                log.exception("preview: the action handler failed on %r", name)

    def _toggle_fullscreen(self) -> None:
        glfw, window = self._glfw, self._window
        if glfw.get_window_monitor(window):
            x, y, w, h = self._windowed_rect
            glfw.set_window_monitor(window, None, x, y, w, h, 0)
            return
        monitors = glfw.get_monitors() or []
        if not monitors:
            return
        x, y = glfw.get_window_pos(window)
        w, h = glfw.get_window_size(window)
        self._windowed_rect = (x, y, w, h)
        monitor = monitors[min(self.monitor, len(monitors) - 1)]
        mode = glfw.get_video_mode(monitor)
        glfw.set_window_monitor(window, monitor, 0, 0, mode.size.width, mode.size.height,
                                mode.refresh_rate)

    def _finish(self) -> None:
        """Release everything, each part even if another fails (after a GL error, some will):
        a reopen after a failure must not leave the old window behind."""
        glfw = self._glfw
        if glfw is None:
            return
        parts = [obj.release for obj in (self._hud_tex, self._frame_tex, self._frame_vao, self._vbo,
                                         self._prog, self._ctx) if obj is not None]
        if self._window is not None:
            parts.append(lambda: glfw.destroy_window(self._window))
        parts.append(glfw.terminate)
        problems = []
        for release in parts:
            try:
                release()
            except Exception as err:
                problems.append(err)
        self._window = self._ctx = self._glfw = None  # (a reopen makes new ones)
        self._prog = self._vbo = self._frame_vao = self._frame_tex = self._hud_tex = None
        self._hud_text = None
        if problems:
            raise problems[0]


def _try_font():
    try:
        return hud_font()
    except ImportError:
        log.warning("preview: Pillow is not installed, so there is no HUD "
                    "(pip install ganinstrument[preview])")
        return None


def _glfw_error(glfw) -> str:
    code, text = glfw.get_error()
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text or f"glfw error {code}"


def _window_size(width: int, height: int) -> tuple[int, int]:
    """Fit the frame in 1280x720; small frames are doubled up to about 512 px."""
    scale = min(1280 / width, 720 / height, max(1.0, 512 / max(width, height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _letterbox(frame_size: tuple[int, int], fb_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest viewport with the frame's aspect ratio, centred in the framebuffer."""
    (fw, fh), (bw, bh) = frame_size, fb_size
    scale = min(bw / fw, bh / fh)
    w, h = max(1, round(fw * scale)), max(1, round(fh * scale))
    return (bw - w) // 2, (bh - h) // 2, w, h
