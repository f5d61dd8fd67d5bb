"""Contact sheets (instrument/sheets.py): seeds and directions of the demo network, drawn by the
instrument and laid out with labels; `info --sheet` and `directions --sheet`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganinstrument.commands.cli import main
from ganinstrument.instrument.facade import Instrument
from ganinstrument.instrument.sheets import _PAD, LABEL_PX, directions_sheet, grid, layers_sheet, seeds_sheet


@pytest.fixture(scope="module")
def inst():
    return Instrument("demo", device="cpu")


def _cells(sheet, rows, cols, cell, label_w, top):
    a = np.asarray(sheet)
    return [[a[top + r * (cell + _PAD): top + r * (cell + _PAD) + cell,
               label_w + c * (cell + _PAD): label_w + c * (cell + _PAD) + cell] for c in range(cols)]
            for r in range(rows)]


def _layout(sheet, rows, cols, cell):
    """(label column width, top margin) from the sheet's size and its rows and columns."""
    w, h = sheet.size
    return w - cols * (cell + _PAD), h - rows * (cell + _PAD)


def _render(inst, cell, **values):
    for name, value in values.items():
        inst.set(name, value, immediate=True)
    picture = Image.fromarray(inst.render().image).resize((cell, cell), Image.LANCZOS)
    return np.asarray(picture)


def test_seeds_sheet_is_each_seed_at_psi_07_in_its_cell(inst):
    sheet = seeds_sheet(inst, seeds=range(6), columns=3, cell=64)
    label_w, top = _layout(sheet, 2, 3, 64)
    assert label_w > 40 and top > 20  # room for "seeds 0..2" and the column labels (and the title)
    cells = _cells(sheet, 2, 3, 64, label_w, top)
    for s in range(6):
        assert np.array_equal(cells[s // 3][s % 3], _render(inst, 64, seed=s, psi=0.7)), s
    assert len({c.tobytes() for row in cells for c in row}) == 6
    a = np.asarray(sheet)
    for r in range(2):  # each row has its label: light text on the dark margin
        label = a[top + r * (64 + _PAD): top + r * (64 + _PAD) + 64, :label_w]
        assert (label.max(axis=2) > 150).sum() > 20


def test_directions_sheet_rows_move_more_with_more_standard_deviations(inst):
    amounts = (-3.0, -1.0, 0.0, 1.0, 3.0)
    sheet = directions_sheet(inst, count=2, seeds=(0, 4), amounts=amounts, cell=48)
    label_w, top = _layout(sheet, 4, 5, 48)
    cells = _cells(sheet, 4, 5, 48, label_w, top)
    for r, (k, s) in enumerate([(0, 0), (0, 4), (1, 0), (1, 4)]):
        assert np.array_equal(cells[r][2], _render(inst, 48, seed=s, psi=0.7)), (k, s)  # 0 sd: the seed itself
        assert np.array_equal(cells[r][4], _render(inst, 48, seed=s, psi=0.7, **{f"dir.{k}": 3.0}))
        inst.set(f"dir.{k}", 0.0, immediate=True)
        change = [np.abs(cells[r][c].astype(int) - cells[r][2]).mean() for c in range(5)]
        assert change[0] > change[1] > 0 and change[4] > change[3] > 0, change
    assert inst.get("dir.0") == 0.0 and inst.get("dir.1") == 0.0  # the instrument is left as it was


def test_grid_keeps_each_pictures_aspect_and_makes_room_for_the_labels():
    cells = [[np.full((32, 64, 3), v, np.uint8) for v in (0, 255)]]
    sheet = grid(cells, ["row"], ["a", "b"], cell=40, title="t")
    top = 2 * (LABEL_PX + 2 * _PAD)  # the title's line and the column labels' line
    assert sheet.size[1] == top + 20 + _PAD  # 64 x 32 pictures drawn 40 x 20
    label_w = sheet.size[0] - 2 * (40 + _PAD)
    a = np.asarray(sheet)
    assert label_w > 0 and (a[top:top + 20, label_w + 44:label_w + 84] == 255).all()
    assert (a[top:top + 20, label_w:label_w + 40] == 0).all()


def test_the_commands_write_sheets_and_refuse_other_names(tmp_path, capsys):
    seeds, dirs = tmp_path / "seeds.png", tmp_path / "dirs.png"
    assert main(["info", "demo", "--sheet", str(seeds)]) == 0
    assert main(["directions", "demo", "--count", "2", "--sheet", str(dirs)]) == 0
    with Image.open(seeds) as image:
        assert image.format == "PNG" and image.size[0] > 4 * 128
    with Image.open(dirs) as image:
        assert image.size[1] > 2 * 3 * 96  # 2 directions x 3 seeds
    assert main(["info", "demo", "--sheet", str(tmp_path / "seeds.jpg")]) == 1
    assert "a sheet is a .png" in capsys.readouterr().err
    assert main(["info", "demo", "--sheet", str(tmp_path / "no" / "such" / "s.png")]) == 1
    assert "cannot write there" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dirs.png", "seeds.png"]  # nothing half-written
    assert seeds.stat().st_mode & 0o044 == 0o044  # readable as any new file (not the temporary's 0600)


def test_layers_sheet_shows_every_view_in_network_order_with_its_name(inst):
    views = inst.targets()["view"].choices
    sheet = layers_sheet(inst, seed=2, columns=5, cell=64)
    rows = -(-len(views) // 5)
    label_w, top = _layout(sheet, rows, 5, 64)
    cells = _cells(sheet, rows, 5, 64, label_w, top)
    band = LABEL_PX + _PAD + 1  # (each caption sits on a dark band at the top of its picture)
    for i in (0, 1, len(views) // 2, len(views) - 1):
        expected = _render(inst, 64, seed=2, psi=0.7, view=i)
        got = cells[i // 5][i % 5]
        assert np.array_equal(got[band:], expected[band:]), views[i]
        assert (got[:band].max(axis=2) > 150).sum() > 5  # the caption's text
    inst.set("view", 0, immediate=True)
    assert len({cells[i // 5][i % 5][band:].tobytes() for i in range(len(views))}) > len(views) // 2
    assert inst.get("view") == 0


def test_info_draws_the_layers(tmp_path):
    out = tmp_path / "layers.png"
    assert main(["info", "demo", "--layers", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 6 * 128


def test_bends_sheet_is_every_transform_from_neutral_to_the_far_end(inst):
    from ganinstrument.instrument.sheets import SheetError, bends_sheet
    from ganinstrument.scene.activation_bends import NEUTRAL, RANGES, TRANSFORMS

    layer = inst.scene.activations.layers[3][0]
    sheet = bends_sheet(inst, layer, shares=(0.0, 1.0), cell=48)
    label_w, top = _layout(sheet, len(TRANSFORMS), 2, 48)
    cells = _cells(sheet, len(TRANSFORMS), 2, 48, label_w, top)
    unbent = _render(inst, 48, seed=0, psi=0.7)
    for r, t in enumerate(TRANSFORMS):
        far = RANGES[t][1] if RANGES[t][1] != NEUTRAL[t] else RANGES[t][0]
        assert np.array_equal(cells[r][0], unbent), t
        assert np.array_equal(cells[r][1], _render(inst, 48, seed=0, psi=0.7, **{f"bend.{layer}.{t}": far})), t
        inst.set(f"bend.{layer}.{t}", NEUTRAL[t], immediate=True)
        assert not np.array_equal(cells[r][1], unbent), t
    inst.render()
    assert inst.scene.activations.hooked == ()  # every bend back at neutral: none left in the network
    with pytest.raises(SheetError, match="no bendable layer 'b4.torgb'; the layers: b4.conv1, b8.conv0"):
        bends_sheet(inst, "b4.torgb")
