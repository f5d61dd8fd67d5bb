"""Looks: saving the current look as a preset, recalling one (at once or morphing), and the
controller's preset actions (next, previous, recall slot N, save slot N) in the presets folder.

Owned by the Instrument, which hands it its state (and with it the registry), latent scene,
models, preset bank and warnings; it runs on the engine thread (files are read and written by the bank's worker).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..common.errors import GanInstrumentError
from ..common.events import Messages
from ..scene.latent import LatentScene
from ..state.params import ActionSpec, Registry, TargetSpec
from ..state.preset_bank import PresetBank, slot_number
from ..state.presets import ModelRef, Preset, PresetError, load_preset_file
from ..state.values import State
from .morph import Morph

PRESET_MORPH = TargetSpec("preset.morph", 0.0, 60.0, 0.0, unit="s", smoothing="none", smoothing_ms=0.0,
                          preset=False, doc="how long preset recall from the controller morphs")
PRESET_MORPH_BEATS = TargetSpec("preset.morph_beats", 0.0, 64.0, 0.0, unit="beats", smoothing="none",
                                smoothing_ms=0.0, preset=False,
                                doc="the morph's length in beats of the beat clock (when not 0, instead of preset.morph)")
PRESET_ACTIONS = (
    ActionSpec("preset.next", "recall the next preset in the presets folder"),
    ActionSpec("preset.prev", "recall the previous preset in the presets folder"),
    ActionSpec("preset.recall", "recall preset slot N (a file named 'N ...yaml')", takes_value=True),
    ActionSpec("preset.save", "save the current look to preset slot N", takes_value=True),
)


class Looks:
    """`on_recall`: called when a recall lands (after its morph): e.g. re-arm soft takeover.
    `redraw`: called when a recall starts, so the next frame is drawn."""

    def __init__(self, state: State, latent: LatentScene, models: tuple[ModelRef, ...],
                 bank: PresetBank, warnings: Messages, redraw: Callable[[], None]):
        self.state, self.latent, self.models = state, latent, models
        self.bank, self.warnings, self.redraw = bank, warnings, redraw
        self.on_recall: list[Callable[[], None]] = []
        self._morph: Morph | None = None
        self._morph_latent: tuple[float, ...] | None = None
        self._wanted: tuple[Path, float, str] | None = None  # (file, morph s, action): see batch()
        self._batching = 0

    def base_z(self) -> np.ndarray:
        override = self.latent.base_z_override
        return override if override is not None else self.latent.seed_z(self.state.get("seed"))

    def snapshot(self, name: str = "") -> Preset:
        """The current look as a Preset (what `save_preset` writes)."""
        values = self.state.values()
        stored = {n: v for n, v in values.items() if self.state.registry.targets[n].preset}
        seed = values["seed"]
        explicit = self.latent.base_z_override is not None or seed != round(seed)
        return Preset(targets=stored, latent=tuple(float(v) for v in self.base_z()) if explicit else None,
                      models=self.models, name=name)

    def save(self, path, name: str | None = None) -> Path:
        """Save the current look to `path` (YAML, atomic; on the bank's worker once started)."""
        path = Path(path)
        return self.bank.save(path, self.snapshot(name if name is not None else path.stem))

    def load(self, path, morph_s: float = 0.0) -> Preset:
        """Recall a preset file: at once, or morphing over `morph_s` seconds.

        A broken file raises PresetError and the current look stays. Targets the preset names
        that this instrument lacks, and models whose content changed, become `warnings`.
        """
        preset = self.recall(load_preset_file(path), path, morph_s)
        self.bank.mark(path)
        return preset

    def recall(self, preset: Preset, source, morph_s: float = 0.0) -> Preset:
        """Recall a parsed preset (`source` names where it came from, in errors and warnings)."""
        path = source
        if preset.latent is not None and len(preset.latent) != self.latent.z_dim:
            raise PresetError(path, [f"latent.vector has {len(preset.latent)} values; this model's z has "
                                     f"{self.latent.z_dim}"])
        self._check_models(preset, path)
        end = {}
        for name, value in preset.targets.items():
            if name in self.state.registry.targets:
                end[name] = self.state.registry.targets[name].clamp(value)
            else:
                hint = Registry.suggest(name, self.state.registry.targets)
                self.warnings.append(f"{path}: preset target {name!r} does not exist here"
                                     + (f" (did you mean {hint[0]!r}?)" if hint else "") + "; skipped")
        base_to = (np.asarray(preset.latent, dtype=np.float64) if preset.latent is not None
                   else self.latent.seed_z(end.get("seed", self.state.get("seed"))))
        if morph_s > 0:
            self._morph = Morph(self.state.values(), end, self.state.registry.targets, morph_s, self.base_z(), base_to)
            self._morph_latent = preset.latent
        else:
            self._finish_recall(end, preset.latent)
        self.redraw()
        return preset

    def _check_models(self, preset: Preset, path) -> None:
        mine = {m.role: m for m in self.models}
        for ref in preset.models:
            own = mine.get(ref.role)
            if own is not None and ref.sha256 and own.sha256 and ref.sha256 != own.sha256:
                self.warnings.append(f"{path}: made with model {ref.role} {ref.path}, whose content differs "
                                     f"from the loaded {own.path}; the look may differ")

    def advance(self, dt: float) -> bool:
        """Move a morph on by `dt` (after the state's smoothing); True if one moved the values."""
        morph = self._morph
        if morph is None:
            return False
        values, base = morph.advance(dt)
        for name, value in values.items():
            self.state.set(name, value, immediate=True)
        self.latent.set_base_z(base)
        if morph.done:
            self._morph = None
            self._finish_recall(morph.end, self._morph_latent)
        return True

    def _finish_recall(self, end: Mapping[str, float], latent) -> None:
        self._morph = None
        self.state.jump_all(end)
        self.latent.set_base_z(None if latent is None else np.asarray(latent, dtype=np.float64))
        for callback in self.on_recall:
            callback()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One frame's controls (show.apply_controls): preset recalls inside are played once, at
        the end, the latest winning, so a burst of them (a flood of program changes) costs one."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching:
                self.play_wanted()

    def action(self, action: str, value: float | None) -> None:
        """preset.next / prev / recall N / save N (the recall lands at the end of a batch)."""
        if action in ("preset.next", "preset.prev"):
            path = self.bank.step(+1 if action == "preset.next" else -1)
            if path is None:
                raise PresetError(self.bank.directory, ["no preset files in this folder"])
        elif action == "preset.save":
            self.play_wanted()  # a recall earlier in the batch: save the look it makes
            self.save(self.bank.path_for_save(slot_number(value, action)))
            return
        else:
            slot = slot_number(value, action)
            path = self.bank.slot_path(slot)
            if path is None:
                raise PresetError(self.bank.directory, [f"no preset in slot {slot}"])
        self._wanted = (path, self.morph_s(), action)
        if not self._batching:
            self.play_wanted(raise_errors=True)

    def morph_s(self) -> float:
        """How long a recall from the controller morphs: preset.morph_beats at the tempo now
        (tempo.bpm), when set; else preset.morph seconds."""
        beats = self.state.get("preset.morph_beats")
        if beats > 0:
            return beats * 60.0 / self.state.get("tempo.bpm")
        return self.state.get("preset.morph")

    def play_wanted(self, raise_errors: bool = False) -> None:
        """Play the preset recall asked for, once its file is parsed (the bank's worker reads
        files not read yet; until then, it waits here, a frame at a time). A file that does
        not parse, or does not fit this model, is a warning (`raise_errors`: raised)."""
        if self._wanted is None:
            return
        path, morph_s, action = self._wanted
        try:
            preset = self.bank.get(path)
            if preset is None:
                return
            self._wanted = None
            self.recall(preset, path, morph_s)
            self.bank.mark(path)
        except (GanInstrumentError, ValueError) as exc:
            self._wanted = None
            if raise_errors:
                raise
            self.warnings.append(f"{action}: {exc}")
