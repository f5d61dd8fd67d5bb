"""The latent scene: seeds, z groups, psi/cutoff, style mixing, directions, the mapping cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from ganinstrument.generator import load_generator
from ganinstrument.scene.latent import (
    SEED_MAX,
    DirectionsFileError,
    LatentConfig,
    LatentConfigError,
    LatentScene,
    slerp,
)
from ganinstrument.scene.noise import perlin_pattern
from ganinstrument.state.params import Registry, UnknownTargetError

FIXTURE_NETS = ["sg2_small", "sg2_cond", "sg3t_small", "sg3r_small"]
GROUP_ACTIONS = ["z.random", "z.zero", "z.min", "z.max", "z.perlin"]


@pytest.fixture(scope="session")
def nets(fixtures_dir):
    """Fixture networks by folder name, loaded once."""
    return {name: load_generator(fixtures_dir / name / "network-stripped.pkl", device="cpu") for name in FIXTURE_NETS}


@pytest.fixture(scope="session")
def G(nets):
    return nets["sg2_small"]


@pytest.fixture(scope="session")
def demo():
    return load_generator("demo", device="cpu")


def _render(G, ws):
    with torch.no_grad():
        return G.synthesis(ws, noise_mode="const")  # [1, C, H, W]


def _rms(a, b):
    return float((a - b).pow(2).mean().sqrt())


# ---------------------------------------------------------------------------- layout and registry


@pytest.mark.parametrize(
    ("groups", "sizes"),
    [(8, (8,) * 8), (5, (13, 13, 13, 13, 12)), (64, (1,) * 64), (1, (64,)), ((60, 4), (60, 4))],
)
def test_groups_are_contiguous_and_as_even_as_possible(G, groups, sizes):
    scene = LatentScene(G, LatentConfig(groups=groups))
    assert scene.group_sizes == sizes
    # Group i moves exactly its own dims, by one prior standard deviation per unit.
    base = scene.z({}).numpy()[0]
    start = 0
    for i, size in enumerate(sizes):
        moved = scene.z({f"z.{i}": 1.0}).numpy()[0] - base
        np.testing.assert_allclose(np.abs(moved[start:start + size]), 1.0, atol=1e-6)
        assert not moved[:start].any() and not moved[start + size:].any()
        start += size


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(groups=65), "do not fit in z_dim=64"),
        (dict(groups=(32, 16)), "add up to 48, but z_dim is 64"),
    ],
)
def test_groups_that_do_not_fit_the_network_are_clear_errors(G, config, message):
    with pytest.raises(LatentConfigError, match=message):
        LatentScene(G, LatentConfig(**config))


@pytest.mark.parametrize(
    "config", [dict(groups=0), dict(groups=(4, 0)), dict(group_range=0), dict(base_seed=-1),
               dict(directions_space="s"), dict(direction_range=math.inf)]
)
def test_bad_configs_are_rejected(config):
    with pytest.raises(ValueError):
        LatentConfig(**config)


def test_targets_and_actions_form_a_registry(G, nets):
    scene = LatentScene(G)
    registry = Registry.build(scene.targets(), scene.actions())
    names = list(registry.targets)
    assert names[:9] == ["seed"] + [f"z.{i}" for i in range(8)]
    assert {"psi", "cutoff", "mix.seed", "mix.amount", "mix.start", "mix.end"} <= set(names)
    assert "class" not in names
    assert registry.target("cutoff").default == G.num_ws
    assert registry.target("seed").kind == "step" and registry.target("seed").smoothing == "one_pole"
    assert set(registry.actions) == {"seed.next", "seed.prev", *GROUP_ACTIONS}
    assert all(spec.doc for spec in scene.targets())
    cond = LatentScene(nets["sg2_cond"], LatentConfig(class_index=2))
    spec = {s.name: s for s in cond.targets()}["class"]
    assert spec.kind == "choice" and spec.choices == ("0", "1", "2", "3") and spec.default == 2
    with pytest.raises(LatentConfigError, match="class_index 4"):
        LatentScene(nets["sg2_cond"], LatentConfig(class_index=4))


# ---------------------------------------------------------------------------- agreement with NVlabs


@pytest.mark.parametrize("name", FIXTURE_NETS)
@pytest.mark.parametrize(
    ("case", "values"),
    [("psi1.ws", {}), ("psi0.7.ws", {"psi": 0.7}), ("psi0.7_cutoff4.ws", {"psi": 0.7, "cutoff": 4})],
)
def test_ws_match_the_recorded_nvlabs_cases(fixtures_dir, nets, name, case, values):
    cases = load_file(fixtures_dir / name / "cases.safetensors")
    scene = LatentScene(nets[name])
    for i in range(cases["z"].shape[0]):
        scene.set_base_z(cases["z"][i])
        label = {"class": i} if nets[name].c_dim else {}  # sg2_cond's rows are classes 0..3
        ws = scene.ws({**values, **label})
        assert ws.shape == (1, nets[name].num_ws, nets[name].w_dim)
        torch.testing.assert_close(ws[0], cases[case][i], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cutoff", range(11))
def test_every_whole_cutoff_equals_the_mapping_networks_own(G, cutoff):
    scene = LatentScene(G)
    z = scene.z({"seed": 3})
    with torch.no_grad():
        expected = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=cutoff)
    assert torch.equal(scene.ws({"seed": 3, "psi": 0.5, "cutoff": cutoff}), expected)


def test_fractional_cutoff_fades_only_the_edge_row(G):
    scene = LatentScene(G)
    lo, mid, hi = (scene.ws({"psi": 0.0, "cutoff": c})[0] for c in (3, 3.25, 4))
    assert torch.equal(mid[:3], lo[:3]) and torch.equal(mid[4:], lo[4:])
    torch.testing.assert_close(mid[3], torch.lerp(lo[3], hi[3], 0.25), rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 5])
def test_psi_0_gives_the_w_avg_image(demo, seed):
    scene = LatentScene(demo)
    ws = scene.ws({"seed": seed, "z.2": 2.5, "psi": 0.0})
    w_avg = demo.mapping.w_avg
    assert torch.equal(ws, w_avg.expand_as(ws))
    assert torch.equal(_render(demo, ws), _render(demo, w_avg.reshape(1, 1, -1).repeat(1, demo.num_ws, 1)))


def test_cutoff_0_means_no_truncation(G):
    scene = LatentScene(G)
    assert torch.equal(scene.ws({"psi": 0.3, "cutoff": 0}), scene.ws({}))


# ---------------------------------------------------------------------------- z groups move the image


@pytest.mark.parametrize("net", ["demo", "sg2_small"])
@pytest.mark.parametrize("sign", [1, -1])
def test_a_z_group_fader_moves_the_image_monotonically(demo, nets, net, sign):
    G = demo if net == "demo" else nets[net]
    scene = LatentScene(G)
    imgs = [_render(G, scene.ws({"z.0": sign * v})) for v in (0, 0.5, 1, 2, 3)]
    distances = [_rms(img, imgs[0]) for img in imgs]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_every_group_visibly_changes_the_demo(demo):
    scene = LatentScene(demo)
    ref = _render(demo, scene.ws({}))
    for i in range(8):
        assert _rms(_render(demo, scene.ws({f"z.{i}": 1.0})), ref) > 0.05, f"z.{i}"


# ---------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("seed", [0, 1, 42, SEED_MAX])
def test_whole_seeds_are_the_nvlabs_gaussian_z(G, seed):
    scene = LatentScene(G)
    expected = np.random.RandomState(seed).randn(1, G.z_dim)  # what gen_images.py draws
    np.testing.assert_array_equal(scene.seed_z(seed), expected[0])
    assert torch.equal(scene.z({"seed": seed}), torch.from_numpy(expected).float())


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10**6), t=st.floats(0.0, 1.0, exclude_max=True))
def test_fractional_seeds_slerp_between_neighbours(G, seed, t):
    scene = LatentScene(G)
    a, b = scene.seed_z(seed), scene.seed_z(seed + 1)
    z = scene.seed_z(seed + t)
    norm = np.linalg.norm(z)
    assert min(np.linalg.norm(a), np.linalg.norm(b)) - 1e-9 <= norm <= max(np.linalg.norm(a), np.linalg.norm(b)) + 1e-9
    # On the great circle from a to b: in their plane, at angle t * omega from a.
    ua, ub, uz = a / np.linalg.norm(a), b / np.linalg.norm(b), z / norm
    omega = math.acos(ua @ ub)
    assert math.isclose(math.acos(min(1.0, ua @ uz)), t * omega, abs_tol=1e-6)
    assert math.isclose(math.acos(min(1.0, ub @ uz)), (1 - t) * omega, abs_tol=1e-6)


def test_seed_crossfade_is_continuous_with_exact_endpoints(G):
    scene = LatentScene(G)
    ts = np.linspace(7.0, 8.0, 1001)
    path = np.stack([scene.seed_z(t) for t in ts])  # [1001, z_dim]
    assert np.array_equal(path[0], scene.seed_z(7)) and np.array_equal(path[-1], scene.seed_z(8))
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    chord = np.linalg.norm(path[-1] - path[0])
    assert steps.max() < 5 * chord / 1000  # no jumps: each 1/1000 of the way moves ~1/1000 of it
    assert np.linalg.norm(scene.seed_z(8 - 1e-9) - scene.seed_z(8)) < 1e-6


def test_slerp_of_equal_or_degenerate_vectors():
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(slerp(a, a, 0.3), a)
    np.testing.assert_allclose(slerp(a, 2 * a, 0.5), 1.5 * a)
    np.testing.assert_allclose(slerp(np.zeros(3), a, 0.5), 0.5 * a)


def test_explicit_base_z_replaces_the_seed(G):
    scene = LatentScene(G)
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(9))
    scene.set_base_z(z)
    assert torch.equal(scene.z({"seed": 1}), z) and torch.equal(scene.z({"seed": 2}), z)
    held = scene.base_z_override
    held[:] = 0  # a copy: the scene's latent is untouched
    assert torch.equal(scene.z({}), z)
    assert torch.equal(scene.z({"z.1": 1.0})[:, :8], z[:, :8])  # groups still apply on top
    scene.set_base_z(None)
    assert scene.base_z_override is None
    assert torch.equal(scene.z({"seed": 1}), torch.from_numpy(scene.seed_z(1)).float()[None])
    with pytest.raises(LatentConfigError, match=r"shape \[64\] or \[1, 64\]"):
        scene.set_base_z(np.zeros(63))
    with pytest.raises(LatentConfigError, match="NaN"):
        scene.set_base_z(np.full(64, np.nan))


def test_ws_never_raises_on_bad_values(G):
    scene = LatentScene(G)
    ref = scene.ws({})
    assert torch.equal(scene.ws({"psi": math.nan, "seed": math.inf, "z.0": "x"}), ref)
    assert torch.equal(scene.ws({"psi": 50.0}), scene.ws({"psi": 2.0}))  # clipped to range
    assert torch.equal(scene.ws({"seed": -4}), scene.ws({"seed": 0}))


# ---------------------------------------------------------------------------- actions


def test_seed_actions_step_and_stay_in_range(G):
    scene = LatentScene(G)
    assert scene.action_updates("seed.next", {"seed": 4}) == {"seed": 5}
    assert scene.action_updates("seed.prev", {"seed": 4}) == {"seed": 3}
    assert scene.action_updates("seed.next", {}) == {"seed": 1}  # from the default, base_seed 0
    assert scene.action_updates("seed.prev", {"seed": 0}) == {"seed": 0}
    assert scene.action_updates("seed.next", {"seed": SEED_MAX}) == {"seed": SEED_MAX}


def test_fixed_group_actions(G):
    scene = LatentScene(G, LatentConfig(groups=4, group_range=2.0))
    assert scene.action_updates("z.zero", {}) == {f"z.{i}": 0.0 for i in range(4)}
    assert scene.action_updates("z.min", {}) == {f"z.{i}": -2.0 for i in range(4)}
    assert scene.action_updates("z.max", {}) == {f"z.{i}": 2.0 for i in range(4)}


@settings(max_examples=20, deadline=None)
@given(action_seed=st.integers(0, 2**32 - 1), groups=st.integers(1, 64), action=st.sampled_from(GROUP_ACTIONS))
def test_random_group_actions_are_deterministic_advancing_and_in_range(G, action_seed, groups, action):
    config = LatentConfig(groups=groups, action_seed=action_seed)
    a, b = LatentScene(G, config), LatentScene(G, config)
    specs = {s.name: s for s in a.targets()}
    presses = [a.action_updates(action, {}) for _ in range(3)]
    assert presses == [b.action_updates(action, {}) for _ in range(3)]
    for press in presses:
        assert set(press) == {f"z.{i}" for i in range(groups)}
        assert all(specs[k].minimum <= v <= specs[k].maximum for k, v in press.items())
    if action in ("z.random", "z.perlin") and groups > 1:
        assert presses[0] != presses[1]  # the RNG advances per press


@pytest.mark.parametrize(("groups", "ratio"), [(8, 0.75), (32, 0.4)])
def test_perlin_is_smooth_across_groups(G, groups, ratio):
    """Neighbouring faders differ much less than in a random pattern of the same spread."""
    scene = LatentScene(G, LatentConfig(groups=groups))

    def roughness(action):
        presses = [np.array(list(scene.action_updates(action, {}).values())) for _ in range(50)]
        return np.mean([np.abs(np.diff(p)).mean() / max(np.abs(p - p.mean()).mean(), 1e-12) for p in presses])

    assert roughness("z.perlin") < ratio * roughness("z.random")


def test_perlin_pattern_range_and_sizes():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 8, 16, 512):
        p = perlin_pattern(n, rng)
        assert p.shape == (n,) and np.all(np.abs(p) <= 1.0)
    assert np.abs(perlin_pattern(512, rng)).max() > 0.2  # not a flat line


def test_unknown_action_suggests(G):
    with pytest.raises(UnknownTargetError, match="did you mean 'z.random'"):
        LatentScene(G).action_updates("z.randon", {})


# ---------------------------------------------------------------------------- the mapping cache


def test_mapping_runs_only_when_z_or_class_changes(nets):
    scene = LatentScene(nets["sg2_cond"])
    scene.ws({})
    assert scene.mapping_calls == 1
    for values in ({"psi": 0.5}, {"psi": 0.5, "cutoff": 3}, {"mix.start": 2}, {"z.0": 0.0}):
        scene.ws(values)
    assert scene.mapping_calls == 1
    scene.ws({"z.0": 1.0})
    assert scene.mapping_calls == 2
    scene.ws({"z.0": 1.0, "psi": 0.2})
    assert scene.mapping_calls == 2
    scene.ws({"z.0": 1.0, "class": 3})
    assert scene.mapping_calls == 3
    scene.ws({"z.0": 1.0, "class": 3, "mix.amount": 0.5})  # the second latent: once
    scene.ws({"z.0": 1.0, "class": 3, "mix.amount": 0.7})
    assert scene.mapping_calls == 4
    scene.ws({"seed": 0.5, "class": 3, "mix.amount": 0.7})  # mid-crossfade: a new z
    assert scene.mapping_calls == 5


def test_invalidate_reruns_the_mapping_network(G):
    scene = LatentScene(G)
    before = scene.ws({"psi": 0.7})
    scene.invalidate()
    assert torch.equal(scene.ws({"psi": 0.7}), before)
    assert scene.mapping_calls == 2


def test_returned_ws_do_not_alias_the_cache(G):
    scene = LatentScene(G)
    ws = scene.ws({})
    ref = ws.clone()
    ws.zero_()
    assert torch.equal(scene.ws({}), ref)


# ---------------------------------------------------------------------------- style mixing


@pytest.mark.parametrize(("start", "end"), [(3, 7), (0, 10), (4, 10), (5, 5), (7, 3)])
def test_mixing_takes_over_exactly_the_chosen_rows(G, start, end):
    scene = LatentScene(G)
    base = {"seed": 2, "mix.seed": 9, "mix.start": start, "mix.end": end}
    own = scene.ws({"seed": 2})
    with torch.no_grad():
        other = G.mapping(scene.z({"seed": 9}), None)
    full = scene.ws({**base, "mix.amount": 1.0})
    rows = list(range(start, end))
    for r in range(G.num_ws):
        assert torch.equal(full[0, r], (other if r in rows else own)[0, r]), r
    assert torch.equal(scene.ws({**base, "mix.amount": 0.0}), own)
    half = scene.ws({**base, "mix.amount": 0.5})
    torch.testing.assert_close(half, torch.lerp(own, full, 0.5), rtol=0, atol=1e-6)


def test_mixing_matches_the_recorded_case(fixtures_dir, G):
    """`mix_cols4`: rows 0..3 from latent i, rows 4.. from latent i+1, as NVlabs style mixing."""
    cases = load_file(fixtures_dir / "sg2_small" / "cases.safetensors")
    scene = LatentScene(G)
    with torch.no_grad():
        ws_all = G.mapping(cases["z"], None)  # [4, num_ws, w_dim]
    for i in range(4):
        expected = ws_all[i].clone()
        expected[4:] = ws_all[(i + 1) % 4, 4:]
        torch.testing.assert_close(expected, cases["mix_cols4.ws"][i], rtol=0, atol=1e-5)
    # The scene mixes the same way: the mix rows come from the second latent's mapping.
    z = scene.z({"seed": 1})
    with torch.no_grad():
        expected = G.mapping(z, None).clone()
        expected[:, 4:] = G.mapping(scene.z({"seed": 2}), None)[:, 4:]
    assert torch.equal(scene.ws({"seed": 1, "mix.seed": 2, "mix.amount": 1, "mix.start": 4}), expected)


# ---------------------------------------------------------------------------- directions


def _save(tmp_path, name, arr):
    path = tmp_path / name
    np.save(path, arr)
    return path


def test_w_directions_move_ws_along_them(tmp_path, G):
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((3, G.w_dim)) * 7.0  # any length: normalised on load
    scene = LatentScene(G, LatentConfig(directions=_save(tmp_path, "d.npy", dirs)))
    assert [s.name for s in scene.targets() if s.name.startswith("dir.")] == ["dir.0", "dir.1", "dir.2"]
    delta = (scene.ws({"dir.1": 2.0}) - scene.ws({}))[0]  # [num_ws, w_dim]
    assert torch.allclose(delta, delta[0].expand_as(delta))  # every row moves alike
    u = torch.from_numpy(dirs[1] / np.linalg.norm(dirs[1])).float()
    cos = float(delta[0] @ u / delta[0].norm())
    assert cos > 0.9999
    with torch.no_grad():
        w = G.mapping(torch.randn(2000, G.z_dim, generator=torch.Generator().manual_seed(5)), None)[:, 0]
    sigma = float(((w - w.mean(0)) @ u).std())
    assert math.isclose(float(delta[0].norm()) / 2.0, sigma, rel_tol=0.1)  # dir.k = 1: one sd of w
    assert scene.mapping_calls == 1  # W directions do not rerun the mapping network
    assert torch.equal(scene.ws({"dir.1": 2.0, "psi": 0.0}), scene.ws({"psi": 0.0}))


def test_z_directions_and_the_ganspace_layout(tmp_path, G):
    dirs = np.zeros((2, 1, G.z_dim), dtype=np.float32)  # GANSpace lat_comp: [K, 1, D]
    dirs[0, 0, 5] = 3.0
    dirs[1, 0, :2] = 1.0
    config = LatentConfig(directions=_save(tmp_path, "z.npy", dirs), directions_space="z")
    scene = LatentScene(G, config)
    moved = (scene.z({"dir.0": 1.5}) - scene.z({}))[0]
    expected = torch.zeros(G.z_dim)
    expected[5] = 1.5
    torch.testing.assert_close(moved, expected, rtol=0, atol=1e-6)
    assert scene.ws({"dir.1": 1.0}).shape == (1, G.num_ws, G.w_dim)


def _write_npz(path):
    with open(path, "wb") as f:  # an archive under a .npy name
        np.savez(f, lat_comp=np.ones((2, 64)))


@pytest.mark.parametrize(
    ("writer", "message"),
    [
        (None, "no such file"),
        (lambda p: p.write_text("not numpy"), "not a readable .npy"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "not a readable .npy"),
        (lambda p: np.save(p, np.zeros((3, 65))), r"shape \[3, 65\] does not fit: expected \[K, 64\]"),
        (lambda p: np.save(p, np.zeros(64)), r"shape \[64\] does not fit"),
        (lambda p: np.save(p, np.zeros((0, 64))), "no directions"),
        (lambda p: np.save(p, np.full((2, 64), np.nan)), "NaN"),
        (lambda p: np.save(p, np.eye(3, 64) * [[1], [0], [1]]), r"direction\(s\) \[1\] are all zeros"),
        (lambda p: np.save(p, np.array([["a"] * 64])), "not numeric"),
        (_write_npz, "an .npz without 'directions'"),
    ],
)
def test_broken_directions_files_name_the_file(tmp_path, G, writer, message):
    path = tmp_path / "dirs.npy"
    if writer is not None:
        writer(path)
    with pytest.raises(DirectionsFileError, match=message) as info:
        LatentScene(G, LatentConfig(directions=path))
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)
