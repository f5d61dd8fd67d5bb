"""Audio modulation semantics: modes, followers, pulses, actions, clamping (schema.ModulationRoute)."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganinstrument.common.clock import FakeClock
from ganinstrument.common.events import ParamUpdate
from ganinstrument.mapping import ModulationRoute, parse_mapping
from ganinstrument.modulation.audio import AUDIO_SIGNALS, AudioFeatures, feature_value, reading_of
from ganinstrument.modulation.routes import Modulation
from ganinstrument.sources.audio.input import BlockSource, OnsetEvent
from ganinstrument.state.params import ActionSpec, Registry, TargetSpec

REGISTRY = Registry.build(
    [
        TargetSpec("psi", 0.0, 2.0, 1.0),
        TargetSpec("z.0", -3.0, 3.0, 0.0),
        TargetSpec("blend.all", 0.0, 1.0, 0.0, extrapolate=True),
        TargetSpec("seed", 0, 1000, 0, kind="step"),
    ],
    [ActionSpec("seed.next"), ActionSpec("preset.recall", takes_value=True)],
    AUDIO_SIGNALS,
)


def route(**kw) -> ModulationRoute:
    kw.setdefault("feature", "rms_db")
    if kw["feature"] == "rms_db":
        kw.setdefault("input_range", (-60.0, 0.0))
    if kw.get("mode") == "multiply":
        kw.setdefault("offset", 1.0)
    return ModulationRoute(**kw)


def frame(mod, base, features=None, onsets=(), dt=1 / 60):
    values = dict(base)
    mod.feed(reading_of(features, onsets))
    changed = mod.apply(values, dt)
    return values, changed


def onset(t=0.0, kind="onset"):
    return OnsetEvent(time_s=t, frame=int(t * 48000), kind=kind)


HALF = {"rms_db": -30.0}  # x = 0.5 with the default -60..0 dB range
BASE = {"psi": 1.0, "z.0": 0.0, "blend.all": 0.5, "seed": 7.0}


# -- modes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("routes", "want"),
    [
        ([route(target="psi", depth=0.4)], 1.2),  # add: base + depth * e
        ([route(target="psi", mode="multiply", depth=1.0)], 1.5),  # multiply: base * (1 + e)
        ([route(target="psi", mode="replace", depth=0.6, offset=0.1)], 0.4),  # replace: offset + depth * e
        # replace first (the last replace wins), then multiply, then add, whatever the file order
        ([route(target="psi", depth=0.2), route(target="psi", mode="multiply", depth=0.0, offset=2.0),
          route(target="psi", mode="replace", offset=0.9, depth=0.0),
          route(target="psi", mode="replace", offset=0.3, depth=0.0)], 0.3 * 2.0 + 0.1),
        ([route(target="psi", depth=0.4, offset=-0.5)], 0.7),  # offset in target units
    ],
)
def test_modes(routes, want):
    mod = Modulation(routes, REGISTRY)
    values, changed = frame(mod, BASE, HALF)
    assert values["psi"] == pytest.approx(want)
    assert changed == {"psi"}
    assert values["z.0"] == 0.0  # untouched targets keep their base


def test_silence_leaves_add_and_multiply_targets_alone():
    mod = Modulation([route(target="psi", depth=0.4), route(target="z.0", mode="multiply", depth=2.0)], REGISTRY)
    values, changed = frame(mod, {**BASE, "z.0": 1.5}, {"rms_db": -90.0})
    assert values["psi"] == 1.0 and values["z.0"] == 1.5 and changed == set()


def test_faders_set_the_base_and_audio_moves_around_it():
    mod = Modulation([route(target="z.0", depth=1.0)], REGISTRY)
    for base in (-1.0, 0.0, 1.25):
        values, _ = frame(mod, {**BASE, "z.0": base}, HALF)
        assert values["z.0"] == pytest.approx(base + 0.5)


def test_curve_and_invert():
    mod = Modulation([route(target="psi", mode="replace", curve="exp", curve_k=3.0, invert=True)], REGISTRY)
    values, _ = frame(mod, BASE, HALF)
    assert values["psi"] == pytest.approx(1.0 - math.expm1(1.5) / math.expm1(3.0))


# -- clamping ---------------------------------------------------------------------------------
def test_clamped_to_the_target_range():
    mod = Modulation([route(target="psi", depth=5.0), route(target="z.0", depth=-10.0)], REGISTRY)
    values, _ = frame(mod, BASE, {"rms_db": 0.0})
    assert values["psi"] == 2.0 and values["z.0"] == -3.0


def test_extrapolating_targets_go_past_their_range():
    mod = Modulation([route(target="blend.all", depth=1.0)], REGISTRY)
    values, _ = frame(mod, BASE, {"rms_db": 0.0})
    assert values["blend.all"] == pytest.approx(1.5)


def test_step_targets_round_and_nan_keeps_the_base():
    mod = Modulation([route(target="seed", depth=3.0)], REGISTRY)
    values, _ = frame(mod, BASE, HALF)
    assert values["seed"] == 8.0  # 7 + 1.5 -> rounded like any step target
    mod = Modulation([route(target="psi", mode="multiply", depth=math.inf, offset=0.0)], REGISTRY)
    values, _ = frame(mod, BASE, {"rms_db": -60.0})  # inf * 0 = NaN: the base stays
    assert values["psi"] == 1.0


# -- followers --------------------------------------------------------------------------------
def run(mod, features, seconds, fps):
    n = max(1, round(seconds * fps))
    values = None
    for _ in range(n):
        values, _ = frame(mod, BASE, features, dt=seconds / n)
    return values


@pytest.mark.parametrize("fps", [1, 24, 60, 144, 1000])
def test_attack_and_release_do_not_depend_on_the_frame_rate(fps):
    mod = Modulation([route(target="psi", mode="replace", attack_ms=100, release_ms=300)], REGISTRY)
    up = run(mod, {"rms_db": 0.0}, 0.1, fps)["psi"]
    assert up == pytest.approx(1.0 - math.exp(-1.0), abs=1e-12)  # one attack time: 63 %
    down = run(mod, {"rms_db": -60.0}, 0.3, fps)["psi"]
    assert down == pytest.approx(up * math.exp(-1.0), abs=1e-12)  # one release time: 37 % left


@settings(max_examples=50, deadline=None)
@given(attack_ms=st.floats(0, 500), release_ms=st.floats(0, 500),
       levels=st.lists(st.floats(-80, 5), min_size=1, max_size=6), fps=st.sampled_from([24, 30, 60, 120]))
def test_follower_is_dt_invariant_and_in_range(attack_ms, release_ms, levels, fps):
    """Piecewise-constant input, each level held 0.25 s: any frame rate lands on the same values."""
    def play(frames_per_level):
        mod = Modulation([route(target="psi", mode="replace", attack_ms=attack_ms, release_ms=release_ms)],
                         REGISTRY)
        out = []
        for level in levels:
            for _ in range(frames_per_level):
                values, _ = frame(mod, BASE, {"rms_db": level}, dt=0.25 / frames_per_level)
            out.append(values["psi"])
        return out

    a, b = play(fps // 4 * 1), play(1)
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert all(0.0 <= v <= 1.0 for v in a)


def test_zero_times_follow_at_once():
    mod = Modulation([route(target="psi", mode="replace")], REGISTRY)
    assert frame(mod, BASE, {"rms_db": 0.0})[0]["psi"] == 1.0
    assert frame(mod, BASE, {"rms_db": -60.0})[0]["psi"] == 0.0


def test_no_audio_releases_and_unvoiced_pitch_holds():
    mod = Modulation([route(target="psi", mode="replace", release_ms=100),
                      route(feature="pitch_note", target="z.0", mode="replace", input_range=(36.0, 96.0))],
                     REGISTRY)
    feats = types.SimpleNamespace(rms_db=0.0, pitch_note=66.0)
    values, _ = frame(mod, BASE, feats)
    assert values["psi"] == 1.0 and values["z.0"] == pytest.approx(0.5)
    unvoiced = types.SimpleNamespace(rms_db=0.0, pitch_note=None)
    values, _ = frame(mod, BASE, unvoiced)
    assert values["z.0"] == pytest.approx(0.5)  # held
    values, _ = frame(mod, BASE, None, dt=0.1)  # the input is gone: release to rest
    assert values["psi"] == pytest.approx(math.exp(-1.0))


# -- onsets -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [30, 60, 240])
def test_pulse_jumps_to_one_and_decays(fps):
    mod = Modulation([route(feature="onset", target="z.0", pulse_decay_ms=200.0)], REGISTRY)
    values, changed = frame(mod, BASE, None, [onset(1.0)], dt=1 / fps)
    assert values["z.0"] == 1.0 and changed == {"z.0"}  # shows in the frame that got it
    values = run(mod, None, 0.2, fps)
    assert values["z.0"] == pytest.approx(math.exp(-1.0), abs=1e-12)
    values, _ = frame(mod, BASE, None, [onset(1.3)], dt=1 / fps)
    assert values["z.0"] == 1.0  # a new onset restarts it


def test_pulse_follows_its_band_only():
    mod = Modulation([route(feature="onset.low", target="z.0", pulse_decay_ms=100.0)], REGISTRY)
    values, _ = frame(mod, BASE, None, [onset(0.0, "onset"), onset(0.0, "onset.high")])
    assert values["z.0"] == 0.0
    values, _ = frame(mod, BASE, None, [onset(0.1, "onset.low")])
    assert values["z.0"] == 1.0


def test_actions_fire_once_per_onset():
    mod = Modulation([route(feature="onset", action="seed.next"),
                      route(feature="onset.high", action="preset.recall", value=3.0)], REGISTRY)
    frame(mod, BASE, None, [onset(0.0), onset(0.1), onset(0.1, "onset.high")])
    assert mod.pending_actions() == [
        ParamUpdate("seed.next", 0.0, action=True, source="audio onset"),
        ParamUpdate("seed.next", 0.0, action=True, source="audio onset"),
        ParamUpdate("preset.recall", 3.0, action=True, source="audio onset.high"),
    ]
    assert mod.pending_actions() == []  # taken once
    frame(mod, BASE, None, [])
    assert mod.pending_actions() == []  # no onset, no action


def test_action_cooldown_uses_onset_times():
    mod = Modulation([route(feature="onset", action="seed.next", cooldown_ms=500.0)], REGISTRY)
    times = [0.0, 0.1, 0.45, 0.6, 1.0, 1.2]
    for t in times:
        frame(mod, BASE, None, [onset(t)])
    assert len(mod.pending_actions()) == 3  # 0.0, 0.6, 1.2


def test_onsets_fed_between_frames_accumulate():
    mod = Modulation([route(feature="onset", action="seed.next")], REGISTRY)
    mod.feed(reading_of(None, [onset(0.0)]))
    mod.feed(reading_of(None, [onset(0.2)]))
    mod.apply(dict(BASE), 1 / 60)
    assert len(mod.pending_actions()) == 2


# -- robustness -------------------------------------------------------------------------------
def test_unknown_names_are_left_out_with_a_warning():
    mod = Modulation([route(target="nope"), route(feature="onset", action="seed.nxet"),
                      route(target="psi", depth=0.4)], REGISTRY)
    assert len(mod.warnings) == 2 and "'nope'" in mod.warnings[0] and "'seed.nxet'" in mod.warnings[1]
    values, _ = frame(mod, BASE, HALF)
    assert values["psi"] == pytest.approx(1.2)


@pytest.mark.parametrize("features", [
    "garbage", 42, {"rms_db": "loud"}, {"rms_db": math.nan}, types.SimpleNamespace(bands=()),
    types.SimpleNamespace(rms_db=math.inf, bands=(math.nan, 1.0, None)),
])
def test_never_raises_per_frame(features):
    mod = Modulation([route(target="psi", depth=0.4), route(feature="bands.low", target="z.0"),
                      route(feature="onset", target="z.0", pulse_decay_ms=50.0)], REGISTRY)
    for dt in (1 / 60, 0.0, -1.0, math.nan, math.inf):
        values, _ = frame(mod, BASE, features, [object(), "onset"], dt=dt)
        assert all(math.isfinite(v) for v in values.values())
    values = {"z.0": 0.0}  # a frame without some targets
    mod.apply(values, 1 / 60)


def test_changed_reports_only_real_changes():
    mod = Modulation([route(target="psi", depth=0.4)], REGISTRY)
    assert frame(mod, BASE, HALF)[1] == {"psi"}
    assert frame(mod, BASE, HALF)[1] == set()  # same audio, same base: nothing to render
    assert frame(mod, BASE, {"rms_db": -90.0})[1] == {"psi"}  # back to the base is a change too


def test_feature_value_reads_features_and_dicts():
    feats = types.SimpleNamespace(rms_db=-12.0, bands=(0.1, 0.2, 0.3), pitch_hz=None, onset=True)
    assert feature_value(feats, "rms_db") == -12.0
    assert feature_value(feats, "bands.high") == 0.3
    assert feature_value(feats, "pitch_hz") is None
    assert feature_value(feats, "onset") is None  # events are not values
    assert feature_value({"bands.mid": 0.5}, "bands.mid") == 0.5


# -- end to end: YAML routes, the real extractor ------------------------------------------------
def test_mapping_routes_driven_by_real_audio():
    text = """
schema_version: 1
modulation:
  - {feature: rms_db, target: psi, mode: multiply, depth: -0.5, attack_ms: 5, release_ms: 100}
  - {feature: onset, target: z.0, pulse: {decay_ms: 120}}
  - {feature: onset, action: seed.next, cooldown_ms: 100}
"""
    mapping = parse_mapping(text, "test.yaml", REGISTRY)
    rate = 48000
    x = np.zeros(rate, np.float32)
    rng = np.random.default_rng(3)
    for t in (0.2, 0.6):
        i = int(t * rate)
        x[i:i + 2400] = rng.standard_normal(2400) * np.exp(-np.arange(2400) / 400.0) * 0.5
    clock = FakeClock()
    source = AudioFeatures(BlockSource(x, rate, follow=clock))  # (the audio as the engine reads it)
    mod = Modulation(mapping.modulation, REGISTRY)
    assert mod.warnings == []
    fps, psi, z, actions = 60, [], [], 0
    for k in range(1, fps + 1):
        clock.set(k / fps)
        mod.feed(source.read())
        values = dict(BASE)
        mod.apply(values, 1 / fps)
        psi.append(values["psi"])
        z.append(values["z.0"])
        actions += len(mod.pending_actions())
    assert actions == 2
    assert max(z) == 1.0 and sum(v == 1.0 for v in z) == 2
    assert min(psi) < 0.99 and psi[-1] == pytest.approx(1.0, abs=0.05)  # ducks on the hits, recovers
    assert all(0.0 <= v <= 2.0 for v in psi)


def test_instrument_renders_modulated_values_and_keeps_the_base(tmp_path):
    from ganinstrument.instrument.facade import Instrument

    inst = Instrument("demo", device="cpu", presets_dir=tmp_path / "presets")
    inst.set("psi", 0.6, immediate=True)
    mod = Modulation([route(target="psi", depth=0.3), route(feature="onset", action="seed.next")],
                     inst.registry)
    inst.modulation = mod
    quiet = inst.step(1 / 30)
    mod.feed(reading_of({"rms_db": 0.0}, [onset(0.0)]))
    loud = inst.step(1 / 30)
    assert loud.index != quiet.index  # the modulated psi (0.9) was rendered
    assert inst.get("psi") == pytest.approx(0.6)  # the base (what presets store) is the fader's
    assert inst.state.targets()["seed"] == 1.0  # seed.next fired once from the onset
