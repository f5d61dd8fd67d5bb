"""Directions on ws rows (scene/directions.py, scene/latent.py): files with each direction's rows,
the set found in the network ("auto": SeFa), and what a direction moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinstrument.generator import load_generator
from ganinstrument.generator.styles import layer_range
from ganinstrument.scene.directions import (
    AUTO_PER_RANGE,
    DirectionSet,
    DirectionsFileError,
    auto_directions,
    load_direction_set,
    save_direction_set,
)
from ganinstrument.scene.latent import LatentConfig, LatentScene
from ganinstrument.scene.sefa import sefa


@pytest.fixture(scope="module")
def nets(fixtures_dir):
    return {name: load_generator(fixtures_dir / name / "network-stripped.pkl", device="cpu")
            for name in ("sg2_small", "sg3t_small")}


@pytest.fixture(scope="module", params=["sg2_small", "sg3t_small"])
def G(request, nets):
    return nets[request.param]


def test_a_direction_moves_only_its_rows_and_exactly_nothing_else(G):
    """auto: SeFa's leading directions of the coarse, middle and fine rows, each on its own rows.
    Moving one changes ws on its rows (by its sigma along it) and leaves every other row bit-exact."""
    scene = LatentScene(G, LatentConfig(directions="auto"))
    assert scene.num_directions == 3 * AUTO_PER_RANGE
    rows = auto_directions(G).rows
    still = scene.ws({})
    for k, spec in ((0, "coarse"), (AUTO_PER_RANGE, "middle"), (2 * AUTO_PER_RANGE + 1, "fine")):
        start, end = (int(v) for v in rows[k])
        named = layer_range(spec, G.num_ws)
        assert end == named[1] and start == (1 if named[0] == 0 and G.kind == "sg3" else named[0])
        moved = scene.ws({f"dir.{k}": 2.0})
        outside = torch.ones(G.num_ws, dtype=torch.bool)
        outside[start:end] = False
        assert torch.equal(moved[:, outside], still[:, outside]), spec
        step = (moved - still)[0, start:end]  # [rows, w_dim]: the same step on every row of the range
        assert torch.allclose(step, step[:1].expand_as(step), atol=1e-6)
        u = torch.from_numpy(sefa(G, spec, count=AUTO_PER_RANGE).directions[k % AUTO_PER_RANGE]).double()
        along = step[0].double() @ u
        assert along > 0 and torch.allclose(step[0].double(), along * u, atol=1e-5)  # along the direction
    assert "on ws rows" in {s.name: s for s in scene.targets()}["dir.0"].doc


def test_no_directions_moved_is_the_same_ws_as_no_directions(G):
    plain = LatentScene(G, LatentConfig()).ws({"seed": 3, "psi": 0.7})
    with_dirs = LatentScene(G, LatentConfig(directions="auto")).ws({"seed": 3, "psi": 0.7, "dir.2": 0.0})
    assert torch.equal(plain, with_dirs)


def test_files_written_here_load_back_with_their_rows(tmp_path, G):
    found = auto_directions(G)
    path = tmp_path / "dirs.npz"
    save_direction_set(path, found, eigenvalues=np.arange(len(found.vectors), dtype=np.float32))
    back = load_direction_set(path, w_dim=G.w_dim, z_dim=G.z_dim, num_ws=G.num_ws)
    assert back.space == "w" and np.array_equal(back.rows, found.rows)
    np.testing.assert_allclose(back.vectors, found.vectors, atol=1e-6)
    a = LatentScene(G, LatentConfig(directions="auto")).ws({"dir.5": 1.5})
    b = LatentScene(G, LatentConfig(directions=path)).ws({"dir.5": 1.5})
    assert torch.allclose(a, b, atol=1e-5)
    # an .npy carries no rows: directions on every row only
    with pytest.raises(DirectionsFileError, match="write an .npz"):
        save_direction_set(tmp_path / "dirs.npy", found)
    everywhere = DirectionSet(found.vectors, np.tile([0, G.num_ws], (len(found.vectors), 1)), "w", "test")
    save_direction_set(tmp_path / "all.npy", everywhere)
    assert np.load(tmp_path / "all.npy").shape == (len(found.vectors), G.w_dim)  # GANSpace's own layout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.npy", "dirs.npz"]  # no temporary left
    assert path.stat().st_mode & 0o044 == 0o044  # readable as any new file (not the temporary's 0600)


def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(("arrays", "message"), [
    (dict(directions=np.ones((2, 64)), layers=np.array([[0, 3], [2, 99]])), r"direction 1's rows \[2, 99\]"),
    (dict(directions=np.ones((2, 64)), layers=np.array([[3, 3], [0, 1]])), r"direction 0's rows \[3, 3\]"),
    (dict(directions=np.ones((2, 64)), layers=np.ones((3, 2), dtype=int)), r"'layers' of shape \[3, 2\]"),
    (dict(directions=np.ones((2, 64)), layers=np.ones((2, 2))), r"float64\): expected \[2, 2\] integers"),
    (dict(directions=np.ones((2, 64)), space=np.array("s")), "space 's'"),
    (dict(directions=np.ones((2, 64)), space=np.array("z"), layers=np.array([0, 2])), "W space only"),
    (dict(directions=np.ones((2, 65))), r"shape \[2, 65\] does not fit"),
    (dict(eigenvalues=np.ones(2)), "without 'directions'"),
])
def test_hostile_npz_files_name_the_file_and_what_is_wrong(tmp_path, nets, arrays, message):
    G = nets["sg2_small"]
    path = tmp_path / "bad.npz"
    _npz(path, **arrays)
    with pytest.raises(DirectionsFileError, match=message) as info:
        LatentScene(G, LatentConfig(directions=path))
    assert str(path) in str(info.value)


def test_one_row_range_for_all_directions_and_z_space_files(tmp_path, nets):
    G = nets["sg2_small"]
    path = tmp_path / "z.npz"
    _npz(path, directions=np.eye(2, G.z_dim), space=np.array("z"))
    scene = LatentScene(G, LatentConfig(directions=path))  # (the config says w: the file says z)
    assert scene.num_directions == 2 and "z-space" in {s.name: s for s in scene.targets()}["dir.1"].doc
    path = tmp_path / "w.npz"
    _npz(path, directions=np.eye(2, G.w_dim), layers=np.array([1, 3]))
    scene = LatentScene(G, LatentConfig(directions=path))
    still, moved = scene.ws({}), scene.ws({"dir.1": 1.0})
    changed = (moved != still).any(dim=2)[0]
    assert changed.tolist() == [i in (1, 2) for i in range(G.num_ws)]


def test_auto_directions_are_cached_by_the_model_files_content(tmp_path, fixtures_dir, monkeypatch, caplog):
    """In the user's cache folder (GANINSTRUMENT_HOME/cache in the tests), under the file's
    sha256: the second load reads them (SeFa is not run), a broken cache is made again, and a
    cache that cannot be written only costs a log line."""
    import shutil

    import ganinstrument.scene.sefa as sefa_mod
    from ganinstrument.common.userdirs import cache_dir
    from ganinstrument.instrument.facade import Instrument

    model = tmp_path / "mine.pkl"
    shutil.copyfile(fixtures_dir / "sg2_small" / "network-stripped.pkl", model)
    first = Instrument(model, device="cpu")
    cached = list((cache_dir() / "directions").glob(f"{first.models[0].sha256}-*.npz"))
    assert len(cached) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["mine.pkl"]  # never beside it
    ws = first.latent.ws({"dir.6": 1.0})

    def no_sefa(*args, **kwargs):
        raise AssertionError("SeFa ran: the cache was not used")

    with monkeypatch.context() as m:
        m.setattr(sefa_mod, "sefa", no_sefa)
        again = Instrument(model, device="cpu")
    assert torch.equal(again.latent.ws({"dir.6": 1.0}), ws)
    assert {s.name: s for s in again.latent.targets()}["dir.6"].doc.startswith("w-space direction 6 of SeFa (auto)")

    cached[0].write_bytes(b"not numpy")
    with caplog.at_level("WARNING"):
        mended = Instrument(model, device="cpu")
    assert "finding the directions again" in caplog.text and str(cached[0]) in caplog.text
    assert torch.allclose(mended.latent.ws({"dir.6": 1.0}), ws, atol=1e-6)
    assert np.load(cached[0])["directions"].shape == (3 * AUTO_PER_RANGE, 64)  # written again, whole

    shutil.rmtree(cache_dir() / "directions")
    (cache_dir() / "directions").write_text("in the way")  # (no folder can be made there, even as root)
    caplog.clear()
    with caplog.at_level("WARNING"):
        kept_out = Instrument(model, device="cpu")
    assert "cannot keep the model's directions" in caplog.text
    assert torch.allclose(kept_out.latent.ws({"dir.6": 1.0}), ws, atol=1e-6)


@pytest.mark.parametrize(("kind", "kwargs"), [
    ("sg2", dict(z_dim=16, w_dim=16, c_dim=0, img_resolution=4, img_channels=3, channel_base=64, channel_max=16)),
    ("sg3", dict(z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                 num_layers=3, num_critical=1)),
])
def test_auto_directions_fit_tiny_networks_too(kind, kwargs):
    """A 4 px StyleGAN2 (2 rows: 'fine' is empty) and a StyleGAN3 with 5 rows ('coarse' is row 0,
    its input transform, alone): the ranges that exist are used, none raises."""
    from ganinstrument.generator import build_generator

    G = build_generator(kind, **kwargs).eval()
    found = auto_directions(G)
    assert 0 < len(found.vectors) <= 3 * AUTO_PER_RANGE and (found.rows[:, 0] < found.rows[:, 1]).all()
    assert LatentScene(G, LatentConfig(directions="auto")).ws({"dir.0": 1.0}).shape == (1, G.num_ws, G.w_dim)


def test_a_truncated_npz_and_z_space_sets(tmp_path, nets):
    G = nets["sg2_small"]
    found = auto_directions(G)
    path = tmp_path / "cut.npz"
    save_direction_set(path, found)
    path.write_bytes(path.read_bytes()[:200])  # (a copy cut short)
    with pytest.raises(DirectionsFileError, match="not a readable") as info:
        LatentScene(G, LatentConfig(directions=path))
    assert str(path) in str(info.value)
    z = DirectionSet(np.eye(3, G.z_dim), np.tile([0, G.num_ws], (3, 1)), "z", "test")
    save_direction_set(tmp_path / "z.npz", z)
    back = load_direction_set(tmp_path / "z.npz", w_dim=G.w_dim, z_dim=G.z_dim, num_ws=G.num_ws)
    assert back.space == "z" and np.allclose(back.vectors, z.vectors)
