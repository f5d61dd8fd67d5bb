"""The command line: info and convert, as a performer runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ganinstrument.commands.cli import main


def test_info_demo_runs_as_a_real_command():
    proc = subprocess.run([sys.executable, "-m", "ganinstrument", "info", "demo"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "sg2 (StyleGAN2)" in out and "256x256" in out
    assert "num_ws 14" in out
    for block in ("b4", "b8", "b128", "b256"):
        assert f"\n  {block} " in out


def test_info_lists_stylegan3_layers_with_shapes_and_parameter_counts(fixtures_dir, capsys):
    assert main(["info", str(fixtures_dir / "sg3t_small" / "network-stripped.pkl")]) == 0
    out = capsys.readouterr().out
    config = json.loads((fixtures_dir / "sg3t_small" / "config.json").read_text())
    for layer in config["layers"]:
        name = layer["name"].split(".", 1)[1]
        ch, (h, w) = layer["out_channels"], layer["out_size"]
        assert f"  {name:<16} [{ch}, {h}, {w}]" in out
    assert "input" in out and "mapping" in out
    assert f"parameters  {config['num_parameters']:,}" in out


def test_info_json_group_parameters_add_up(fixtures_dir, capsys):
    assert main(["info", "--json", str(fixtures_dir / "sg2_cond" / "weights.safetensors")]) == 1
    capsys.readouterr()  # plain safetensors without our header: a clear error (tested below)
    assert main(["info", "--json", str(fixtures_dir / "sg2_cond" / "network-stripped.pkl")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["c_dim"] == 4 and info["num_ws"] == 10
    assert sum(g["num_params"] for g in info["groups"]) == info["num_params"] == 116400


def test_info_verbose_lists_every_tensor(fixtures_dir, capsys):
    assert main(["info", "-v", str(fixtures_dir / "sg2_small" / "tf-format.pkl")]) == 0
    out = capsys.readouterr().out
    assert "synthesis.b64.conv0.affine.weight" in out and "[8, 64]" in out


def test_convert_then_info_reads_the_same_model(fixtures_dir, tmp_path, capsys):
    dst = tmp_path / "model.safetensors"
    assert main(["convert", str(fixtures_dir / "rosinality_small" / "checkpoint.pt"), str(dst)]) == 0
    assert dst.is_file()
    capsys.readouterr()
    assert main(["info", "--json", str(dst)]) == 0
    assert json.loads(capsys.readouterr().out)["num_params"] == 95344


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x80\x04N."])
def test_bad_files_give_one_clear_line_and_exit_1(tmp_path, capsys, content):
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(content)
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganinstrument info: error:") and "broken.pkl" in err
    assert "\n" not in err and "Traceback" not in err


def test_convert_onto_a_folder_is_one_line_and_leaves_the_folder_alone(tmp_path, capsys):
    (tmp_path / "model.safetensors").mkdir()
    assert main(["convert", "demo", str(tmp_path / "model.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"ganinstrument convert: error: {tmp_path / 'model.safetensors'}: cannot write there: that is a folder"
    assert "\n" not in err and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_file_error_nothing_foresaw_is_still_one_line_naming_it(tmp_path, capsys, monkeypatch):
    import ganinstrument.generator.loading as loading

    def fails(src, dst):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked.safetensors"))

    monkeypatch.setattr(loading, "convert_model", fails)
    assert main(["convert", "demo", str(tmp_path / "locked.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"ganinstrument convert: error: {tmp_path / 'locked.safetensors'}: Permission denied "
                   "(--debug shows where)")
    with pytest.raises(PermissionError):
        main(["--debug", "convert", "demo", str(tmp_path / "locked.safetensors")])


def test_missing_file_names_the_path(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.pkl")]) == 1
    assert "nope.pkl" in capsys.readouterr().err


def test_targets_lists_the_registry_and_actions(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("psi ", "z.7 ", "edit.b256 ", "seed.next ", "preset.recall "):
        assert name in out
    assert "blend.all" not in out  # only with a second model
    signals = out.split("signals (a modulation route's feature):\n")[1].splitlines()
    assert [line.split()[:3] for line in signals if line.split()[0] in ("rms_db", "onset.low")] == [
        ["rms_db", "audio", "-60"], ["onset.low", "audio", "event"]]
