"""`ganinstrument directions`, and `--directions auto|FILE|none` where the instrument is built
(targets, check, perform, render: the session's)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from ganinstrument.commands.check import registry_for
from ganinstrument.commands.cli import main
from ganinstrument.commands.render import _defaults_from_session
from ganinstrument.scene.directions import AUTO_PER_RANGE, load_direction_set


def test_directions_writes_a_file_that_the_instrument_plays(tmp_path, capsys):
    out = tmp_path / "mine.npz"
    assert main(["directions", "demo", "--layers", "middle", "--count", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 SeFa directions for ws rows 3..5" in printed and f"wrote {out}" in printed
    found = load_direction_set(out, w_dim=64, z_dim=64, num_ws=14)
    assert found.vectors.shape == (3, 64) and found.rows.tolist() == [[3, 6]] * 3
    assert np.load(out)["eigenvalues"].shape == (3,)
    assert main(["targets", "--directions", str(out)]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dir.")]
    assert [line.split()[0] for line in listed] == ["dir.0", "dir.1", "dir.2"]
    assert all("on ws rows 3..5" in line for line in listed)


@pytest.mark.parametrize(("args", "message"), [
    (["--layers", "14"], "--layers 14: layer range '14': this network has ws rows 0..13"),
    (["--layers", "fine-ish"], "--layers fine-ish: layer range 'fine-ish': expected all, coarse"),
    (["--count", "0"], "--count 0: at least 1"),
    (["--out", "dirs.txt"], "dirs.txt: name the file .npz"),
    (["--layers", "coarse", "--out", "c.npy"],
     "--out c.npy: an .npy moves every row, and --layers coarse is rows 0..2"),
    (["--out", "no/such/folder/d.npz"], "--out no/such/folder/d.npz: cannot write there: there is no folder"),
    (["--sheet", "no/such/folder/d.png"], "--sheet no/such/folder/d.png: cannot write there: there is no folder"),
])
def test_bad_arguments_say_what_to_do_before_any_work_and_write_nothing(tmp_path, monkeypatch, capsys, args,
                                                                          message):
    monkeypatch.chdir(tmp_path)
    assert main(["directions", "demo", "--method", "ganspace", *args]) == 1
    printed = capsys.readouterr()
    assert message in printed.err
    assert printed.out == "" and "samples of w" not in printed.err  # (refused before sampling, not after)
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_cannot_be_written_is_one_line_and_leaves_nothing_behind(tmp_path, capsys):
    (tmp_path / "taken.npz").mkdir()  # a folder where the file would go
    assert main(["directions", "demo", "--out", str(tmp_path / "taken.npz")]) == 1
    assert "taken.npz: cannot write there: that is a folder" in capsys.readouterr().err
    # Past the early check (the folder appears during the work), the write itself says so.
    from ganinstrument.scene.directions import DirectionSet, DirectionsFileError, save_direction_set

    found = DirectionSet(np.eye(2, 64), np.array([[0, 14], [0, 14]]), "w", "sefa")
    with pytest.raises(DirectionsFileError, match="taken.npz: cannot write there"):
        save_direction_set(tmp_path / "taken.npz", found)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.npz"]  # (no temporary file left)
    assert main(["info", "demo", "--layers", str(tmp_path / "nowhere" / "l.png")]) == 1
    assert "l.png: cannot write there: there is no folder" in capsys.readouterr().err


def test_more_directions_than_w_has_dimensions_are_said_and_capped(tmp_path, capsys):
    out = tmp_path / "all.npz"
    assert main(["directions", "demo", "--count", "500", "--out", str(out)]) == 0
    assert "--count 500: w has 64 dimensions, so there are at most 64 directions" in capsys.readouterr().out
    assert np.load(out)["directions"].shape == (64, 64)


def test_by_default_every_model_has_directions_and_the_generic_mapping_plays_them():
    names = list(registry_for("demo").targets)
    assert [n for n in names if n.startswith("dir.")] == [f"dir.{k}" for k in range(3 * AUTO_PER_RANGE)]
    assert not any(n.startswith("dir.") for n in registry_for("demo", directions=None).targets)
    assert main(["check", "generic"]) == 0


def test_render_takes_the_directions_the_show_was_played_with():
    args = argparse.Namespace(model=None, model_b=None, mapping=None, preset=None, presets_dir=None,
                              directions=None, fps=None, session="show.jsonl")
    _defaults_from_session(args, {"model": "demo", "directions": "none"})
    assert args.directions == "none"
    args.directions = None
    _defaults_from_session(args, {"model": "demo"})  # a session from before directions: played without
    assert args.directions == "none"
    args.directions, args.session = None, None
    _defaults_from_session(args, {})  # no session: the model's own
    assert args.directions == "auto"


def test_the_generic_mappings_directions_are_on_undefined_ccs():
    from ganinstrument.common.events import ControlEvent
    from ganinstrument.instrument.facade import Instrument

    inst = Instrument("demo", device="cpu", mapping="generic")
    for number, value in ((32, 127.0), (32, 0.0), (41, 127.0), (63, 90.0)):  # (Solo, Play; 14-bit low bytes)
        inst.feed([ControlEvent("control_change", 0, number, value, 0.0, "test")])
    assert all(inst.get(f"dir.{k}") == 0.0 for k in range(3 * AUTO_PER_RANGE))
    inst.feed([ControlEvent("control_change", 0, 102, v, 0.0, "test") for v in (64.0, 127.0)])  # (pickup)
    inst.step(1.0)
    assert inst.get("dir.0") > 0.0
