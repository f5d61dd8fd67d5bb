"""Layer edits and network blending (scene/bending.py, scene/edits.py) on the demo and fixtures."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from ganinstrument.common.errors import GanInstrumentError, ModelMismatchError
from ganinstrument.generator import build_generator, load_generator
from ganinstrument.scene.bending import Bender, check_compatible, group_of
from ganinstrument.scene.edits import EditSpec, default_edits

torch.set_num_threads(2)


def load_fixture(fixtures_dir, name):
    folder = fixtures_dir / name
    cfg = json.loads((folder / "config.json").read_text())
    G = build_generator(cfg["kind"], **cfg["init_kwargs"])
    G.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
    return G.eval()


def perturbed(G, seed):
    """Model B: A with every learned tensor moved by seeded noise, 0.2 of the tensor's std.

    Designed filters and the identity input transform stay equal (as in two trainings of one
    architecture); magnitude EMAs move multiplicatively so they stay positive.
    """
    B = copy.deepcopy(G)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in B.state_dict().items():
            if key.endswith(("_filter", ".transform")):
                continue
            n = torch.randn(t.shape, generator=gen)
            if key.endswith("magnitude_ema"):
                t.mul_(n.mul_(0.2).exp_())
            else:
                std = float(t.std(correction=0)) if t.numel() > 1 else 0.0
                t.add_(n.mul_(0.2 * std if std > 0 else 0.05))
    return B


def render(G, seed=3, n=1):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))  # [N, z_dim]
    with torch.inference_mode():
        return G(z, None, noise_mode="const")  # [N, C, H, W]


def snapshot(G):
    return {k: v.detach().clone() for k, v in G.state_dict().items()}


def same_weights(G, ref, keys=None):
    sd = G.state_dict()
    return all(torch.equal(sd[k], ref[k]) for k in (keys if keys is not None else ref))


def dist(x, y):
    return float((x - y).abs().mean())


_MODELS: dict[str, tuple] = {}


def model_pair(name, fixtures_dir):
    """(A, B) by name, built once per test session; callers bend a deep copy of A."""
    if name not in _MODELS:
        A = load_generator("demo") if name == "demo" else load_fixture(fixtures_dir, name)
        _MODELS[name] = (A, perturbed(A, 7 if name == "demo" else 11))
    return _MODELS[name]


@pytest.fixture
def demo_pair(fixtures_dir):
    return model_pair("demo", fixtures_dir)


@pytest.fixture(params=["demo", "sg2_small", "sg3t_small", "sg3r_small"])
def pair(request, fixtures_dir):
    """A fresh live copy of A (the bender edits it) and the shared model B."""
    A, B = model_pair(request.param, fixtures_dir)
    return copy.deepcopy(A), B


# -- EditSpec ------------------------------------------------------------------------------


def test_edit_spec_validation_names_the_edit():
    with pytest.raises(ValueError, match="edit wobble: op must be one of"):
        EditSpec("wobble", ("synthesis.*",), op="twist")
    with pytest.raises(ValueError, match="edit w: the neutral value of 'scale' is 1"):
        EditSpec("w", ("x",), op="scale", neutral=0.0)
    with pytest.raises(ValueError, match="edit w: range"):
        EditSpec("w", ("x",), op="offset", minimum=0.5, maximum=1.0)
    with pytest.raises(ValueError, match="edit w: patterns"):
        EditSpec("w", (), op="offset", minimum=-1.0)
    spec = EditSpec("edit.b64", "synthesis.b64.*weight", op="noise", maximum=1.0)
    assert (spec.name, spec.target, spec.patterns, spec.neutral) == ("b64", "edit.b64", ("synthesis.b64.*weight",), 0.0)
    assert spec.target_spec().default == 0.0 and spec.target_spec().maximum == 1.0


def test_a_pattern_matching_nothing_is_an_error_naming_the_edit(demo_pair):
    G = copy.deepcopy(demo_pair[0])
    edits = [EditSpec("ok", ("synthesis.b8.*.weight",)), EditSpec("typo", ("synthesis.b8.conv0.weight", "synthesis.b9*"))]
    with pytest.raises(ValueError, match=r"edit typo: pattern 'synthesis.b9\*' matches no"):
        Bender(G, edits=edits)
    with pytest.raises(ValueError, match="edit ok defined twice"):
        Bender(G, edits=[edits[0], edits[0]])


# -- default edits -------------------------------------------------------------------------


def test_default_edit_names(demo_pair, fixtures_dir):
    G = demo_pair[0]
    assert [e.target for e in default_edits(G)] == [f"edit.{b}" for b in G.synthesis.block_names()]
    G3 = load_fixture(fixtures_dir, "sg3t_small")
    names = [e.target for e in default_edits(G3)]
    assert names[0] == "edit.input" and "edit.L6_52_32" in names and len(names) == 16
    assert default_edits(G3)[0].op == "scale" and default_edits(G3)[0].patterns == ("synthesis.input.weight",)


def test_every_default_edit_visibly_and_monotonically_changes_the_image(pair):
    """Mean |image change| grows (within 15%: noise saturates) toward each end of the range and
    reaches a tenth of the image's own spread there, over a few latents."""
    G = pair[0]
    n = 2 if G.img_resolution > 64 else 4
    ref = render(G, n=n)
    bender = Bender(G)
    for edit in bender.edits:
        for end in (edit.minimum, edit.maximum):
            if end == edit.neutral:
                continue
            ds = []
            for i in range(1, 4):
                bender.apply({edit.target: edit.neutral + (end - edit.neutral) * i / 3})
                ds.append(dist(render(G, n=n), ref))
            assert ds[-1] > 0.1 * float(ref.std()), f"{edit.target} towards {end} barely shows: {ds}"
            for i in range(1, len(ds)):
                assert ds[i] >= 0.85 * max(ds[:i]), f"{edit.target} towards {end} is not monotone: {ds}"
        bender.apply({edit.target: edit.neutral})
    assert torch.equal(render(G, n=n), ref)


# -- edits: reversible, and only on change ---------------------------------------------------


def test_edits_set_and_reset_restore_the_weights_bit_exactly(pair):
    G, B = pair
    ref = snapshot(G)
    bender = Bender(G, B)
    gen = torch.Generator().manual_seed(0)
    values = {s.name: s.minimum + (s.maximum - s.minimum) * float(torch.rand([], generator=gen))
              for s in bender.targets()}
    assert bender.apply(values)
    assert not same_weights(G, ref)
    bender.reset()
    assert same_weights(G, ref)
    assert bender.apply({}) == set() and bender.values == {s.name: s.default for s in bender.targets()}


def test_only_tensors_whose_values_changed_are_rewritten(demo_pair):
    G, B = copy.deepcopy(demo_pair[0]), demo_pair[1]
    bender = Bender(G, B)
    live = dict(G.state_dict(keep_vars=True))
    versions = lambda: {k: v._version for k, v in live.items()}  # noqa: E731
    ptrs = {k: v.data_ptr() for k, v in live.items()}

    before = versions()
    assert bender.apply({"edit.b32": 0.5, "psi": 0.7}) == set(bender.keys_for("edit.b32"))
    after = versions()
    assert {k for k in live if after[k] != before[k]} == set(bender.keys_for("edit.b32"))
    assert bender.apply({"edit.b32": 0.5, "blend.b4": 0.0}) == set()  # same values: nothing touched
    assert versions() == after

    assert bender.apply({"blend.b16": 0.25}) == set(bender.keys_for("blend.b16"))
    assert all(group_of(k) == "b16" for k in bender.keys_for("blend.b16"))
    # blend.all up and a group down by the same amount: that group's tensors stay as they are.
    written = bender.apply({"blend.all": 0.5, "blend.b64": -0.5})
    assert written == set(bender.keys_for("blend.all")) - set(bender.keys_for("blend.b64"))
    assert {k: v.data_ptr() for k, v in live.items()} == ptrs, "tensors must be rewritten in place"
    assert all(p.grad_fn is None for p in G.parameters())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.sampled_from(["edit.b8", "edit.b32", "blend.all", "blend.b16", "blend.mapping"]),
                                st.floats(-1.5, 2.5, allow_nan=False), min_size=1), min_size=1, max_size=5))
def test_live_weights_depend_only_on_the_current_values(demo_pair, steps):
    """Any path of updates ends in the weights a fresh bender gives for the final values."""
    A, B = demo_pair
    G, fresh = copy.deepcopy(A), copy.deepcopy(A)
    bender = Bender(G, B, edits=default_edits(A)[1:4])
    for step in steps:
        bender.apply(step)
    Bender(fresh, B, edits=default_edits(A)[1:4]).apply(bender.values)
    assert same_weights(G, snapshot(fresh))
    bender.reset()
    assert same_weights(G, snapshot(A))


# -- blending ---------------------------------------------------------------------------------


def test_blend_0_renders_a_1_renders_b_and_half_lies_between(pair):
    """Bit-exact ends. The middle: a weight-space midpoint of two random networks need not be an
    image-space one (sg3r_small with some B seeds lands a little past B), so B's seed is fixed."""
    G, B = pair
    img_a, img_b = render(G), render(B)
    bender = Bender(G, B)
    bender.apply({"blend.all": 0.5})
    img_mid = render(G)
    bender.apply({"blend.all": 1.0})
    assert torch.equal(render(G), img_b)
    assert same_weights(G, snapshot(B))
    bender.apply({"blend.all": 0.0})
    assert torch.equal(render(G), img_a)
    d_ab = dist(img_a, img_b)
    assert dist(img_mid, img_a) < d_ab and dist(img_mid, img_b) < d_ab
    assert dist(img_mid, img_a) > 0.05 * d_ab and dist(img_mid, img_b) > 0.05 * d_ab


def test_blend_extrapolates_past_0_and_1(demo_pair):
    G, B = copy.deepcopy(demo_pair[0]), demo_pair[1]
    bender = Bender(G, B, edits=[])
    spec = {s.name: s for s in bender.targets()}["blend.all"]
    assert spec.extrapolate and spec.minimum < 0 and spec.maximum > 1
    img_a, img_b = render(G), render(B)
    for t in (-0.5, 1.5, 3.0):
        bender.apply({"blend.all": t})
        img = render(G)
        assert torch.isfinite(img).all() and dist(img, img_a) > 0 and dist(img, img_b) > 0
        assert bender.values["blend.all"] == t
    bender.apply({"blend.all": math.nan})  # a NaN from a broken source falls back to the default
    assert torch.equal(render(G), img_a)


def test_group_blends_add_to_blend_all_and_touch_only_their_group(pair):
    G, B = pair
    a, b = snapshot(G), snapshot(B)
    bender = Bender(G, B, edits=[])
    groups = bender.blend_groups
    assert groups[0] == "mapping" and len(groups) == len(G.synthesis.tap_names() if G.kind == "sg3"
                                                         else G.synthesis.block_names()) + 1
    one = groups[len(groups) // 2]
    written = bender.apply({f"blend.{one}": 1.0})
    assert written and all(group_of(k) == one for k in written)
    sd = G.state_dict()
    assert all(torch.equal(sd[k], b[k] if group_of(k) == one else a[k]) for k in sd)
    bender.apply({"blend.all": 1.0, f"blend.{one}": -1.0})  # everything B except that group
    sd = G.state_dict()
    assert all(torch.equal(sd[k], a[k] if group_of(k) == one else b[k]) for k in sd)


def test_buffers_blend_where_they_differ(fixtures_dir):
    A = load_fixture(fixtures_dir, "sg3t_small")
    B = perturbed(A, 5)
    bender = Bender(copy.deepcopy(A), B)
    keys = set(bender.keys_for("blend.L3_36_32"))
    assert "synthesis.L3_36_32.magnitude_ema" in keys and "synthesis.L3_36_32.weight" in keys
    assert "synthesis.L3_36_32.up_filter" not in keys  # equal in both: left alone
    assert "mapping.w_avg" in bender.keys_for("blend.mapping")
    assert {"synthesis.input.freqs", "synthesis.input.phases"} <= set(bender.keys_for("blend.input"))
    assert "synthesis.input.transform" not in bender.keys_for("blend.input")
    bender.apply({"blend.L3_36_32": 0.5})
    ema = bender.G.state_dict()["synthesis.L3_36_32.magnitude_ema"]
    lo, hi = sorted([float(A.state_dict()["synthesis.L3_36_32.magnitude_ema"]),
                     float(B.state_dict()["synthesis.L3_36_32.magnitude_ema"])])
    assert lo < float(ema) < hi
    sg2 = Bender(copy.deepcopy(A := load_generator("demo")), perturbed(A, 1), edits=[])
    assert "synthesis.b8.conv0.noise_const" in sg2.keys_for("blend.b8")


def test_half_precision_tensors_blend_and_restore_exactly(fixtures_dir):
    A = load_fixture(fixtures_dir, "sg2_small")
    B = perturbed(A, 3).half()
    A = A.half()
    G, ref = copy.deepcopy(A), snapshot(A)
    bender = Bender(G, B)
    bender.apply({"blend.all": 0.3, "edit.b16": 0.7, "blend.b8": 1.2})
    assert all(v.dtype == torch.float16 for v in G.state_dict().values() if v.is_floating_point())
    bender.apply({"blend.all": 1.0, "edit.b16": 0.0, "blend.b8": 0.0})
    assert same_weights(G, snapshot(B))
    bender.reset()
    assert same_weights(G, ref)


# -- compatibility ---------------------------------------------------------------------------


def _sg2(res, seed, channel_base):
    torch.manual_seed(seed)
    return build_generator("sg2", z_dim=16, w_dim=16, c_dim=0, img_resolution=res, img_channels=3,
                           channel_base=channel_base, channel_max=16, mapping_kwargs=dict(num_layers=2)).eval()


def test_incompatible_models_are_a_clear_error_listing_matching_groups():
    A, B = _sg2(32, 1, 256), _sg2(64, 2, 512)  # b32 is wider in B, b64 only in B
    report = check_compatible(A, B, name_a="a.pkl", name_b="b.pkl")
    assert not report.ok and report.matching == ("mapping", "b4", "b8", "b16")
    assert [g for g, _ in report.differing] == ["b32", "b64"]
    assert report.differing[0][1].startswith("synthesis.b32.conv0.weight shape [8, 16, 3, 3] vs [16, 16, 3, 3]")
    with pytest.raises(ModelMismatchError) as info:
        Bender(copy.deepcopy(A), B, name_a="a.pkl", name_b="b.pkl")
    text = str(info.value)
    assert "a.pkl" in text and "b.pkl" in text and "partial=True" in text
    assert "mapping, b4, b8, b16" in text
    assert "b32: synthesis.b32.conv0.weight shape" in text
    assert "b64: only in b.pkl" in text
    assert isinstance(info.value, (ValueError, GanInstrumentError))


def test_partial_pair_blends_only_the_matching_groups():
    A, B = _sg2(32, 1, 256), _sg2(64, 2, 512)
    G = copy.deepcopy(A)
    bender = Bender(G, B, partial=True)
    assert bender.blend_groups == ("mapping", "b4", "b8", "b16")
    a = snapshot(A)
    bender.apply({"blend.all": 1.0})
    sd, b = G.state_dict(), B.state_dict()
    assert all(torch.equal(sd[k], b[k] if group_of(k) in bender.blend_groups else a[k]) for k in sd)
    assert bender.report is not None and not bender.report.ok


def test_different_kinds_never_blend(fixtures_dir):
    A, B = load_fixture(fixtures_dir, "sg2_small"), load_fixture(fixtures_dir, "sg3t_small")
    with pytest.raises(ModelMismatchError, match=r"\(sg2\) with model B \(sg3\): they are different kinds"):
        Bender(copy.deepcopy(A), B, partial=True)


def test_same_architecture_is_compatible(demo_pair):
    report = check_compatible(*demo_pair)
    assert report.ok and report.differing == () and report.matching[0] == "mapping"
