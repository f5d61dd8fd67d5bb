"""The Instrument: one object that tests, `render`, the live engine and users' scripts drive.

    inst = Instrument(model="demo")
    inst.set("psi", 0.6)
    inst.trigger("seed.next")
    frame = inst.step(1 / 30)      # smooth by dt, update the scene, render
    inst.save_preset("presets/01 dusk.yaml")

Per frame: the state smooths every moving target by the real dt; the bender rewrites only the
weights whose edit or blend moved; the latent scene re-runs the mapping network only when z
moved; the synthesis network renders only when something it depends on changed. When nothing
moves, `step` returns the previous picture at no cost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..common.clock import Clock
from ..common.errors import GanInstrumentError
from ..common.events import Messages, ParamUpdate
from ..common.frame import Frame
from ..generator import load_generator
from ..generator.device import pick_device
from ..generator.ops import tune_cpu_allocator
from ..modulation import SIGNALS
from ..modulation.beat import TEMPO_ACTION_NAMES, TEMPO_ACTIONS, TEMPO_TARGETS
from ..modulation.routes import Modulation
from ..scene.bending import Bender
from ..scene.latent import LatentConfig, LatentScene
from ..scene.scene import RenderParams, Scene
from ..state.params import ActionSpec, Registry, TargetSpec
from ..state.preset_bank import PresetBank
from ..state.presets import ModelRef, Preset, file_sha256
from ..state.values import SMOOTHING_TARGET, State
from .looks import PRESET_ACTIONS, PRESET_MORPH, PRESET_MORPH_BEATS, Looks
from .show import SHOW_ACTION_NAMES, SHOW_ACTIONS
from .wiring import Controls, build_controls

log = logging.getLogger(__name__)


def _model_ref(role: str, model) -> ModelRef:
    if isinstance(model, (str, os.PathLike)) and os.fspath(model) != "demo":
        path = os.path.abspath(os.fspath(model))
        return ModelRef(role, path, file_sha256(path))
    return ModelRef(role, "demo" if model == "demo" or model is None else repr(model), None)


class Instrument:
    """A playable StyleGAN network (and optionally a second one to blend toward).

    `model`, `model_b`: a model file, "demo", or an already-built generator. `device`: None
    for automatic (CUDA, MPS, CPU). `mapping`: a mapping file or shipped name; then `feed`
    routes ControlEvents through it and its audio routes modulate the targets (`use_mapping`).
    `latent`: z groups, seeds and directions (LatentConfig); None: the defaults, with
    `directions` ("auto": found in the model, SeFa; a file; None: no dir.* targets).
    `edits`: None for one default edit per layer/block, or a list of EditSpec.
    `presets_dir`: the folder `preset.next/prev/recall/save` work in (a preset_bank.PresetBank:
    the live engine starts its worker, so those actions never wait on the disk); None: the user's
    presets folder (userdirs.default_presets_dir).
    """

    def __init__(self, model="demo", model_b=None, device=None, mapping=None, *, latent: LatentConfig | None = None,
                 directions="auto", edits=None, presets_dir=None):
        self.device = pick_device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.G = model if isinstance(model, torch.nn.Module) else load_generator(model, device=self.device)
        self.G_b = None
        if model_b is not None:
            self.G_b = model_b if isinstance(model_b, torch.nn.Module) else load_generator(model_b, device=self.device)
        self.models = (_model_ref("a", model),) + ((_model_ref("b", model_b),) if model_b is not None else ())
        latent = latent if latent is not None else LatentConfig(directions=directions,
                                                                directions_key=self.models[0].sha256)
        self.scene = Scene(self.G, self.G_b, latent=latent, edits=edits, device=self.device,
                           name_a=str(self.models[0].path), name_b=str(self.models[-1].path))
        # The one place every name is assembled: each part declares its own (the state its
        # smoothing, the scene its view, noise, latent and bender targets, the presets and the
        # show their actions, each modulation source its signals).
        registry = Registry.build([SMOOTHING_TARGET, *self.scene.targets(), PRESET_MORPH, PRESET_MORPH_BEATS,
                                   *TEMPO_TARGETS],
                                  [*self.scene.actions(), *PRESET_ACTIONS, *SHOW_ACTIONS, *TEMPO_ACTIONS], SIGNALS)
        self.state = State(registry)  # (the registry is the state's: a mapping may add its own targets)
        self.bank = PresetBank(presets_dir)  # (None: the user's, made when `bank.directory` is first read)
        self.warnings = Messages(maxlen=32)  # for the HUD (which reads `said` to see new ones)
        self.looks = Looks(self.state, self.scene.latent, self.models, self.bank, self.warnings, self.redraw)
        # The mapping's modulation routes (use_mapping): `feed(reading)` per source and frame,
        # then `apply(values, dt)` writes into the frame's values after smoothing.
        self.modulation: Modulation | None = None
        self.last_values: dict[str, float] = self.state.values()
        self.time_s = 0.0
        self.frames_rendered = 0
        self._dirty = True
        self._last: Frame | None = None
        self.controls: Controls | None = None
        if mapping is not None:
            self.warnings.extend(self.use_mapping(mapping).warnings)

    def use_mapping(self, mapping, clock: Clock | None = None) -> Controls:
        """Play through a mapping file or shipped name: its router takes the controls (soft
        takeover re-armed after every preset recall) and its modulation routes move the
        targets. Raises MappingError (every problem, with file:line) and changes nothing if it
        is broken; its warnings are in the Controls (for the caller to say)."""
        controls = build_controls(mapping, self.registry, self.state.target, clock)
        self.state.extend(controls.registry)  # (the mapping's own targets: its LFOs' rate and depth)
        if self.controls is not None:
            self.on_recall.remove(self.controls.router.rearm)
        self.controls, self.modulation = controls, controls.modulation
        self.on_recall.append(controls.router.rearm)
        return controls

    @property
    def registry(self) -> Registry:
        """Every name this instrument knows: targets, actions, signals (and, once a mapping is
        used, the mapping's own targets)."""
        return self.state.registry

    @property
    def on_recall(self) -> list[Callable[[], None]]:
        """Called when a preset recall lands (after its morph): e.g. re-arm soft takeover."""
        return self.looks.on_recall

    # -- the scene's parts, as before the scene had them ---------------------------------
    @property
    def latent(self) -> LatentScene:
        return self.scene.latent

    @property
    def bender(self) -> Bender:
        return self.scene.bender

    @property
    def taps(self) -> tuple[str, ...]:
        return self.scene.taps

    # -- targets and actions ------------------------------------------------------------
    def targets(self) -> Mapping[str, TargetSpec]:
        """Every performable target by name, with range, default, unit and smoothing."""
        return self.registry.targets

    def actions(self) -> Mapping[str, ActionSpec]:
        return self.registry.actions

    def set(self, name: str, value: float, *, smoothing_ms: float | None = None, immediate: bool = False) -> float:
        """Ask target `name` for `value` (smoothed unless `immediate`); returns the clamped value."""
        clamped = self.state.set(name, value, smoothing_ms=smoothing_ms, immediate=immediate)
        self._dirty = True
        return clamped

    def get(self, name: str) -> float:
        """The current (smoothed) value of target `name`."""
        return self.state.get(name)

    def trigger(self, action: str, value: float | None = None) -> None:
        """Fire an action, e.g. "seed.next", "z.random", "preset.recall" with value 3."""
        self.registry.action(action)
        if action in SHOW_ACTION_NAMES or action in TEMPO_ACTION_NAMES:
            return  # the show's and the beat clock's (engine.Engine): not the scene
        if action.startswith("env."):  # (a mapping's envelope, fired by hand)
            if self.modulation is not None:
                self.modulation.fire(action)
            return
        if action.startswith("preset."):
            self.looks.action(action, value)
        else:
            for name, target in self.latent.action_updates(action, self.state.targets()).items():
                self.state.set(name, target)
        self._dirty = True

    def feed(self, events) -> int:
        """Route raw ControlEvents (MIDI, OSC) through the mapping given at construction and
        apply the resulting updates; returns how many applied. Never raises."""
        if self.controls is None:
            raise GanInstrumentError("this Instrument has no mapping; pass mapping=... to route events")
        return sum(self.apply(update) for update in self.controls.router.route(events))

    def apply(self, update: ParamUpdate) -> bool:
        """The stage side: apply one controller update; never raises (problems go to `warnings`)."""
        if not update.action:
            ok = self.state.apply(update)
            if not ok and self.state.problems:
                self.warnings.append(self.state.problems[-1])
            self._dirty |= ok
            return ok
        try:
            self.trigger(update.target, update.value)
            return True
        except (GanInstrumentError, KeyError, ValueError) as exc:
            self.warnings.append(f"{update.source or 'action'} {update.target}: {exc}")
            return False

    # -- the frame --------------------------------------------------------------------
    def step(self, dt: float) -> Frame:
        """Advance smoothing (and any morph) by `dt` seconds, update the scene, render."""
        params, changed = self._advance(dt)
        if self._last is not None and not (changed or self._dirty or self.scene.animated(params)):
            return self._last.again(self.time_s)
        self._dirty = False
        return self._draw(params)

    def advance(self, dt: float) -> None:
        """What `step` does, without the render: smoothing, morphs, audio modulation and its
        actions move on by `dt` seconds (render's pre-roll before a take). The next `step`
        renders. Weight edits (a function of the values alone) wait for that render."""
        self._advance(dt, scene=False)
        self._dirty = True

    def _advance(self, dt: float, scene: bool = True) -> tuple[RenderParams, bool]:
        """Move every value on by `dt`; returns the frame's RenderParams and whether anything
        moved. `scene`: also rewrite the weights the values edit."""
        dt = float(dt) if math.isfinite(dt) and dt > 0 else 0.0
        self.looks.play_wanted()  # a recall asked for whose file the bank has read by now
        while self.bank.errors:  # saves the disk refused (the bank's worker)
            self.warnings.append(self.bank.errors.popleft())
        self.time_s += dt
        moved = self.state.step(dt)
        if self.looks.advance(dt):
            moved.add("morph")
        values = self.state.values()
        if self.modulation is not None:
            # Faders set the base; audio moves around it. Presets keep the base values.
            moved |= self.modulation.apply(values, dt)
            for update in self.modulation.pending_actions():
                self.apply(update)
        self.last_values = values  # what this frame plays (modulated): logs and the HUD read it
        params = RenderParams.of(values, self.time_s)
        rewritten = scene and self.scene.update(params.values)
        return params, bool(moved or rewritten)

    def redraw(self) -> None:
        """Render the next frame even if no value moved (after changing the scene behind the
        registry's back, e.g. `latent.set_base_z`)."""
        self._dirty = True

    def warm_up(self, frames: int = 3) -> Frame:
        """Render `frames` frames at the current values (no time passes); returns the last.
        CPU back ends set themselves up per shape on the first calls (the first 1-3 frames
        are slow), so `perform` warms up before the show."""
        self.scene.activations.group()  # (the channel clusters of the bends: once, before the show)
        frame = None
        for _ in range(max(1, int(frames))):
            self._dirty = True
            frame = self.step(0.0)
        return frame

    def render(self) -> Frame:
        """Render the current values now (no time passes)."""
        if self._last is not None:
            return self.step(0.0)
        values = {**self.state.values(), "noise": 0}  # (the first picture: constant noise)
        params = RenderParams.of(values, self.time_s)
        self.scene.update(params.values)  # (the weight edits and blends of a look loaded before it)
        return self._draw(params)

    def _draw(self, params: RenderParams) -> Frame:
        self.frames_rendered += 1
        self._last = self.scene.render(params, self.frames_rendered)
        return self._last

    # -- presets ----------------------------------------------------------------------
    def snapshot(self, name: str = "") -> Preset:
        """The current look as a Preset (what `save_preset` writes)."""
        return self.looks.snapshot(name)

    def save_preset(self, path, name: str | None = None) -> Path:
        """Save the current look to `path` (YAML, atomic; on the bank's worker once started)."""
        return self.looks.save(path, name)

    def load_preset(self, path, morph_s: float = 0.0) -> Preset:
        """Recall a preset file: at once, or morphing over `morph_s` seconds.

        A broken file raises PresetError and the current look stays. Targets the preset names
        that this instrument lacks, and models whose content changed, become `warnings`.
        """
        return self.looks.load(path, morph_s)

    def recall(self, preset: Preset, source, morph_s: float = 0.0) -> Preset:
        """Recall a parsed preset (`source` names where it came from, in errors and warnings)."""
        return self.looks.recall(preset, source, morph_s)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """One frame's controls (show.apply_controls): preset recalls inside are played once, at
        the end, the latest winning, so a burst of them (a flood of program changes) costs one."""
        return self.looks.batch()
