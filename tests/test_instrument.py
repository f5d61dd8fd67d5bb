"""The Instrument API end to end on the demo network: play, view layers, presets, morphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinstrument.common.events import ParamUpdate
from ganinstrument.generator import build_generator
from ganinstrument.generator.demo import DEMO_KWARGS, build_demo
from ganinstrument.instrument.facade import Instrument
from ganinstrument.state.params import UnknownTargetError
from ganinstrument.state.presets import PresetError


@pytest.fixture
def inst(tmp_path):
    return Instrument("demo", device="cpu", presets_dir=tmp_path / "presets")


def settle(inst, seconds=3.0, fps=10):
    frame = None
    for _ in range(int(seconds * fps)):
        frame = inst.step(1 / fps)
    return frame


def diff(a, b):
    return float(np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).mean())


def test_registry_names_the_scene(inst):
    names = set(inst.targets())
    assert {"psi", "cutoff", "seed", "z.0", "z.7", "smoothing", "view", "mix.amount", "edit.b64"} <= names
    assert {"seed.next", "z.random", "preset.recall"} <= set(inst.actions())
    with pytest.raises(UnknownTargetError, match="did you mean 'psi'"):
        inst.set("pis", 1)


def test_frames_are_rgb_uint8_and_nothing_moving_costs_nothing(inst):
    first = inst.step(1 / 30)
    assert first.image.shape == (256, 256, 3) and first.image.dtype == np.uint8
    again = settle(inst, 0.5)
    assert inst.frames_rendered == 1 and again.index == first.index
    assert again.timestamp == pytest.approx(first.timestamp + 0.5, abs=1e-6)
    assert again.image is first.image  # the picture shown again is not copied to the host again


def test_a_fader_move_shows_in_the_next_frame_and_glides(inst):
    start = settle(inst, 0.1)
    inst.set("z.0", 3.0)
    nxt = inst.step(1 / 30)
    assert nxt.index == start.index + 1 and diff(nxt, start) > 0
    end = settle(inst, 3.0)
    assert diff(end, start) > diff(nxt, start)


def test_seed_next_crossfades(inst):
    a = settle(inst, 0.1)
    inst.trigger("seed.next")
    mid = inst.step(1 / 30)
    assert 0 < inst.get("seed") < 1
    b = settle(inst, 4.0)
    assert inst.get("seed") == 1.0
    assert 0 < diff(mid, a) < diff(b, a)


def test_layer_view_shows_a_tap(inst):
    img = settle(inst, 0.1)
    view = inst.targets()["view"]
    inst.set("view", view.choices.index("b32"))
    tap = inst.step(1 / 30)
    assert tap.image.shape == (32, 32, 3)
    inst.set("view", 0)
    assert np.array_equal(inst.step(1 / 30).image, img.image)


def test_preset_save_and_recall_reproduce_the_frame_bit_exactly(inst, tmp_path):
    inst.set("psi", 0.6)
    inst.set("z.2", -1.5)
    inst.set("edit.b16", 0.8)
    inst.trigger("seed.next")
    saved = settle(inst)
    path = inst.save_preset(tmp_path / "look.yaml")
    inst.trigger("z.random")
    inst.set("psi", 1.3)
    other = settle(inst)
    assert diff(other, saved) > 1
    inst.load_preset(path)
    assert np.array_equal(inst.step(1 / 30).image, saved.image)


def test_explicit_latent_round_trips(inst, tmp_path):
    z = np.random.default_rng(3).standard_normal(DEMO_KWARGS["z_dim"])
    inst.latent.set_base_z(z)
    saved = settle(inst, 0.1)
    path = inst.save_preset(tmp_path / "z.yaml")
    inst.latent.set_base_z(None)
    inst.redraw()
    assert diff(settle(inst, 0.1), saved) > 0
    inst.load_preset(path)
    assert np.array_equal(inst.step(1 / 30).image, saved.image)


def test_morph_passes_through_intermediate_frames(inst, tmp_path):
    start = settle(inst, 0.1)
    inst.set("psi", 0.3)
    inst.trigger("seed.next")
    target = settle(inst)
    path = inst.save_preset(tmp_path / "b.yaml")
    inst.set("psi", 1.0, immediate=True)
    inst.set("seed", 0, immediate=True)
    assert np.array_equal(settle(inst, 0.5).image, start.image)
    inst.load_preset(path, morph_s=1.0)
    mids = [inst.step(0.25) for _ in range(3)]
    assert 0.0 < inst.get("psi") < 1.0
    for m in mids:
        assert diff(m, start) > 0 and diff(m, target) > 0
    assert diff(mids[0], target) > diff(mids[2], target)
    inst.step(0.25)
    assert np.array_equal(settle(inst, 0.1).image, target.image)


def test_broken_preset_keeps_the_current_look(inst, tmp_path):
    inst.set("psi", 0.4)
    before = settle(inst)
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\ntargets: {psi: [1]}\n")
    with pytest.raises(PresetError, match="bad.yaml"):
        inst.load_preset(bad)
    assert np.array_equal(inst.step(1 / 30).image, before.image)
    # From a controller, the same failure is a warning and the show goes on.
    assert not inst.apply(ParamUpdate("preset.recall", 7, action=True, source="pad 7"))
    assert "pad 7" in inst.warnings[-1] and "slot 7" in inst.warnings[-1]


def test_preset_slots_from_actions(inst, tmp_path):
    inst.set("psi", 0.5)
    settle(inst)
    inst.trigger("preset.save", 1)
    inst.set("psi", 1.5)
    settle(inst)
    inst.trigger("preset.save", 2)
    assert sorted(p.name for p in inst.bank.files()) == ["01.yaml", "02.yaml"]
    inst.trigger("preset.recall", 1)
    assert inst.get("psi") == 0.5
    inst.trigger("preset.next")
    assert inst.get("psi") == 1.5
    inst.set("preset.morph", 2.0)
    inst.trigger("preset.prev")
    inst.step(1.0)
    assert inst.get("psi") == pytest.approx(1.0)


def test_unknown_preset_targets_warn_and_the_rest_applies(inst, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("schema_version: 1\ntargets: {psi: 0.25, zz.0: 1}\n")
    inst.load_preset(path)
    assert inst.get("psi") == 0.25
    assert any("zz.0" in w and "did you mean 'z.0'" in w for w in inst.warnings)


def test_blending_two_networks(tmp_path):
    A = build_demo()
    with torch.random.fork_rng():
        torch.manual_seed(7)
        B = build_generator("sg2", **DEMO_KWARGS)
    B.mapping.w_avg.copy_(A.mapping.w_avg)
    only_a = Instrument(build_demo(), device="cpu").step(0.1)
    inst = Instrument(A, B, device="cpu")
    assert np.array_equal(inst.step(0.1).image, only_a.image)
    inst.set("blend.all", 1.0, immediate=True)
    only_b = Instrument(B, device="cpu").step(0.1)
    assert np.array_equal(inst.step(0.1).image, only_b.image)
    inst.set("blend.all", 0.5, immediate=True)
    half = inst.step(0.1)
    assert diff(half, only_a) > 0 and diff(half, only_b) > 0


def test_presets_record_the_model_and_warn_when_it_changed(fixtures_dir, tmp_path):
    import shutil

    model = tmp_path / "net.pkl"
    shutil.copy(fixtures_dir / "sg2_small" / "network-stripped.pkl", model)
    inst = Instrument(str(model), device="cpu")
    path = inst.save_preset(tmp_path / "p.yaml")
    text = path.read_text()
    from ganinstrument.state.presets import file_sha256

    assert str(model) in text and file_sha256(model) in text
    inst.load_preset(path)
    assert not inst.warnings
    path.write_text(text.replace(file_sha256(model), "f" * 64))
    inst.load_preset(path)
    assert "content differs" in inst.warnings[-1] and "net.pkl" in inst.warnings[-1]


def test_a_mapping_given_to_the_instrument_routes_events():
    from ganinstrument.common.events import ControlEvent

    inst = Instrument("demo", device="cpu", mapping="generic")
    assert inst.modulation is not None  # the generic mapping's audio routes
    # CC 24 -> psi, with soft takeover: a fader far from psi's value waits for pickup ...
    assert inst.feed([ControlEvent("control_change", 0, 24, 0.0)]) == 0
    assert inst.state.target("psi") == 1.0
    # ... and takes over once it meets the value (psi 1 sits at 2/3 of its -1..2 range)
    assert inst.feed([ControlEvent("control_change", 0, 24, 85.0)]) == 1
    assert inst.feed([ControlEvent("control_change", 0, 24, 0.0)]) == 1
    assert inst.state.target("psi") == inst.targets()["psi"].minimum
    with pytest.raises(Exception, match="no mapping"):
        Instrument(build_demo(), device="cpu").feed([])


def test_warm_up_renders_each_time_and_redraw_forces_one_frame(inst):
    calls = []
    real = inst.scene.render

    def counting(params, index):
        calls.append(params)
        return real(params, index)

    inst.scene.render = counting
    try:
        frame = inst.warm_up(3)
        assert len(calls) == 3 and frame.size == (256, 256)
        inst.step(1 / 30)                      # nothing moved: the last frame again
        assert len(calls) == 3
        inst.redraw()
        inst.step(1 / 30)
        assert len(calls) == 4
        with pytest.raises(TypeError):  # what the scene is handed is frozen
            calls[-1].values["psi"] = 0.0
    finally:
        del inst.scene.render


def test_the_scene_draws_render_params_alone(inst):
    """The scene, handed a frame's RenderParams, draws what the network makes of those values
    (computed here without the scene: the latent's ws through the synthesis network), as
    image or as a layer's activations; the params are read-only."""
    from ganinstrument.generator.taps import image_to_uint8, tap_to_uint8
    from ganinstrument.scene.scene import RenderParams

    values = {**inst.state.values(), "z.0": 1.5, "psi": 0.7}
    with torch.no_grad():
        ws = inst.latent.ws(values)
        image = image_to_uint8(inst.G.synthesis(ws, noise_mode="const")[:, :3])[0]
        tap = tap_to_uint8(inst.G.synthesis(ws, noise_mode="const", until=inst.taps[1]), mode="project")[0]
    drawn = inst.scene.render(RenderParams.of(values, 1.25), 99)
    assert (drawn.index, drawn.timestamp) == (99, 1.25) and torch.equal(drawn.pixels, image)
    params = RenderParams.of({**values, "view": 2}, 0.0)
    assert params.view == 2 and params.noise == "const"
    assert torch.equal(inst.scene.render(params, 1).pixels, tap)
    with pytest.raises(TypeError):
        params.values["psi"] = 1.0
