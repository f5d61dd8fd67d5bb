"""GANSpace (scene/ganspace.py): principal components of sampled w, and `directions --method
ganspace`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinstrument.commands.cli import main
from ganinstrument.generator import load_generator
from ganinstrument.scene.directions import load_direction_set
from ganinstrument.scene.ganspace import ganspace, sample_w


@pytest.fixture(scope="module", params=["sg2_small", "sg3t_small", "sg2_cond"])
def G(request, fixtures_dir):
    return load_generator(fixtures_dir / request.param / "network-stripped.pkl", device="cpu")


def test_components_are_the_principal_axes_of_the_sampled_w(G):
    """Against an independent PCA (numpy's SVD of the centred samples) of the same draws."""
    n = 3000
    found = ganspace(G, n, seed=5, batch=n)
    w = sample_w(G, n, torch.Generator().manual_seed(5)).numpy()
    centred = w - w.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    variances = sv ** 2 / (n - 1)
    np.testing.assert_allclose(found.variances, variances, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(found.mean, w.mean(axis=0), atol=1e-9)
    d = found.directions
    np.testing.assert_allclose(d @ d.T, np.eye(len(d)), atol=1e-8)  # orthonormal
    assert np.all(np.diff(found.variances) <= 1e-12) and np.all(np.diff(found.explained) <= 1e-12)
    assert abs(found.explained.sum() - 1.0) < 1e-9
    simple = np.minimum(np.abs(np.diff(variances, prepend=np.inf)), np.abs(np.diff(variances, append=-np.inf)))
    simple = simple > 1e-6 * variances[0]
    dots = np.abs(np.sum(d * vt, axis=1))
    np.testing.assert_allclose(dots[simple], 1.0, atol=1e-6)
    assert simple[:5].all()


def test_the_same_seed_gives_the_same_components_and_another_seed_other_samples(G):
    a = ganspace(G, 4000, count=3, seed=1, batch=1000)
    b = ganspace(G, 4000, count=3, seed=1, batch=1000)
    c = ganspace(G, 4000, count=3, seed=2, batch=1000)
    assert np.array_equal(a.directions, b.directions) and np.array_equal(a.variances, b.variances)
    assert not np.array_equal(a.directions, c.directions)
    np.testing.assert_allclose(c.variances, a.variances, rtol=0.15)  # (the model's spread, sampled again)


def test_progress_is_reported_per_batch_and_samples_are_checked(G):
    seen = []
    ganspace(G, 2500, count=2, on_progress=seen.append, batch=1000)
    assert seen == [1000, 2000, 2500]
    with pytest.raises(ValueError, match="at least 2"):
        ganspace(G, 1)


def test_the_command_writes_components_that_load_back(tmp_path, capsys):
    out = tmp_path / "pcs.npz"
    assert main(["directions", "demo", "--method", "ganspace", "--samples", "5000", "--count", "4",
                 "--layers", "fine", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "4 GANSpace components of 5000 w (seed 0), on ws rows 6..13" in captured.out
    assert "5000/5000 samples of w" in captured.err  # the progress bar
    found = load_direction_set(out, w_dim=64, z_dim=64, num_ws=14)
    assert found.rows.tolist() == [[6, 14]] * 4
    saved = np.load(out)
    assert str(saved["method"]) == "ganspace" and np.all(np.diff(saved["share"]) <= 0)
    assert main(["directions", "demo", "--method", "ganspace", "--samples", "1"]) == 1
    assert "--samples 1: 2 .. 10000000" in capsys.readouterr().err
