"""Every model format converts to exactly the fixture weights; every bad file is a clear error."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from ganinstrument.common.errors import ModelLoadError
from ganinstrument.generator import convert_rosinality, safetensors_format
from ganinstrument.generator.channels import fit_channel_params, sg2_channels
from ganinstrument.generator.loading import detect_format, load_generator, read_model

NVLABS = ["sg2_small", "sg2_cond", "sg2ada_small", "sg3t_small", "sg3r_small"]


def _config(fixtures_dir, name):
    return json.loads((fixtures_dir / name / "config.json").read_text())


def _assert_same_tensors(got: dict, ref: dict):
    assert sorted(got) == sorted(ref)
    for key, value in ref.items():
        assert got[key].shape == value.shape, key
        assert got[key].dtype == torch.float32, key
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("sg2_small/network-stripped.pkl", "nvlabs-pickle"),
        ("sg3r_small/network-stripped.pkl", "nvlabs-pickle"),
        ("sg2_small/tf-format.pkl", "tf-pickle"),
        ("rosinality_small/checkpoint.pt", "torch"),
        ("sg2_small/weights.safetensors", "safetensors"),
    ],
)
def test_detect_format_reads_content(fixtures_dir, tmp_path, rel, expected):
    assert detect_format(fixtures_dir / rel) == expected
    disguised = tmp_path / "model.bin"  # the extension plays no part
    disguised.write_bytes((fixtures_dir / rel).read_bytes())
    assert detect_format(disguised) == expected


def test_detect_demo():
    assert detect_format("demo") == "demo"


@pytest.mark.parametrize("name", NVLABS)
def test_nvlabs_pickle_converts_exactly(fixtures_dir, name):
    data = read_model(fixtures_dir / name / "network-stripped.pkl")
    config = _config(fixtures_dir, name)
    assert data.kind == config["kind"]
    assert data.init_kwargs == config["init_kwargs"]
    assert not data.needs_w_avg
    _assert_same_tensors(data.tensors, load_file(fixtures_dir / name / "weights.safetensors"))


def test_tf_pickle_converts_exactly(fixtures_dir):
    data = read_model(fixtures_dir / "sg2_small" / "tf-format.pkl")
    assert data.kind == "sg2"
    expected = dict(_config(fixtures_dir, "sg2_small")["init_kwargs"], architecture="skip")
    assert data.init_kwargs == expected
    _assert_same_tensors(data.tensors, load_file(fixtures_dir / "sg2_small" / "weights.safetensors"))


def _rosinality(fixtures_dir):
    return torch.load(fixtures_dir / "rosinality_small" / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_rosinality_converts_keys_and_values(fixtures_dir):
    ckpt = _rosinality(fixtures_dir)
    g = ckpt["g_ema"]
    data = read_model(fixtures_dir / "rosinality_small" / "checkpoint.pt")
    ref = load_file(fixtures_dir / "sg2_small" / "weights.safetensors")  # same geometry, other values
    assert sorted(data.tensors) == sorted(ref)
    assert all(data.tensors[k].shape == ref[k].shape for k in ref)
    assert data.init_kwargs["conv_clamp"] is None
    assert (data.init_kwargs["channel_base"], data.init_kwargs["channel_max"]) == (512, 32)
    assert data.init_kwargs["mapping_kwargs"] == {"num_layers": 4}
    t = data.tensors
    assert torch.equal(t["mapping.fc0.weight"], g["style.1.weight"])
    assert torch.equal(t["mapping.fc3.bias"], g["style.4.bias"])
    assert torch.equal(t["mapping.w_avg"], ckpt["latent_avg"][0])
    assert torch.equal(t["synthesis.b4.const"], g["input.input"][0])
    assert torch.equal(t["synthesis.b64.conv0.weight"], g["convs.6.conv.weight"][0])  # no flip
    assert torch.equal(t["synthesis.b64.conv1.affine.bias"], g["convs.7.conv.modulation.bias"])  # no +1
    assert torch.equal(t["synthesis.b8.conv0.noise_strength"], g["convs.0.noise.weight"][0])
    assert torch.equal(t["synthesis.b16.conv1.noise_const"], g["noises.noise_4"][0, 0])
    assert torch.equal(t["synthesis.b32.torgb.bias"], g["to_rgbs.2.bias"].flatten())
    assert torch.equal(t["synthesis.b4.resample_filter"], ref["synthesis.b4.resample_filter"])


def test_rosinality_channel_table_that_nvlabs_cannot_express(fixtures_dir):
    ckpt = _rosinality(fixtures_dir)
    ckpt["g_ema"]["convs.4.conv.weight"] = torch.zeros(1, 20, 32, 3, 3)  # 32 px: 20 channels
    with pytest.raises(ModelLoadError, match="cannot be expressed by NVlabs channel_base/channel_max"):
        convert_rosinality.convert(ckpt, "x.pt")


def test_channel_table_fit():
    assert fit_channel_params({4: 32, 8: 32, 16: 32, 32: 16, 64: 8}) == (512, 32)
    stock_f = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    assert fit_channel_params(stock_f) == (32768, 512)
    assert sg2_channels(32768, 512, 1024) == stock_f
    assert fit_channel_params({4: 32, 8: 16, 16: 32}) is None


# -- our safetensors format (no generator needed) --------------------------------------------


class _FakeG:
    kind = "sg3"

    def __init__(self, tensors, init_kwargs):
        self._tensors = tensors
        self.init_kwargs = init_kwargs

    def state_dict(self):
        return self._tensors


def test_safetensors_header_round_trip(fixtures_dir, tmp_path):
    ref = load_file(fixtures_dir / "sg3t_small" / "weights.safetensors")
    kwargs = _config(fixtures_dir, "sg3t_small")["init_kwargs"]
    path = tmp_path / "out.safetensors"
    safetensors_format.write(_FakeG(ref, kwargs), path, source="/some/where/net.pkl", notes=["n1"])
    assert detect_format(path) == "safetensors"
    data = read_model(path)
    assert (data.kind, data.init_kwargs, data.notes) == ("sg3", kwargs, ["n1"])
    _assert_same_tensors(data.tensors, ref)
    assert not list(tmp_path.glob(".tmp-*"))  # the temporary file was renamed into place


def _write_ours(path, tensors, kind, init_kwargs, version=1):
    header = {"format_version": version, "kind": kind, "init_kwargs": init_kwargs, "source": None}
    save_file(tensors, str(path), metadata={"ganinstrument": json.dumps(header)})


# -- bad input --------------------------------------------------------------------------------


def _raises(path, match):
    with pytest.raises(ModelLoadError, match=match) as err:
        load_generator(path, device="cpu")
    assert isinstance(err.value, ValueError)
    assert str(path) in str(err.value)
    return err.value


def test_missing_path(tmp_path):
    _raises(tmp_path / "nope.pkl", "no such file")


def test_directory(tmp_path):
    _raises(tmp_path, "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    _raises(path, "empty")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pkl"
    path.write_bytes(os.urandom(4096).replace(b"\x80", b"\x81", 1).lstrip(b"\x80") or b"x")
    err = _raises(path, "unrecognised file format")
    assert "accepted" in str(err)


def test_text_file(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("hello, this is not a model\n")
    _raises(path, "text starting 'hello")


def test_plain_safetensors_needs_metadata(fixtures_dir):
    _raises(fixtures_dir / "sg2_small" / "weights.safetensors", "ganinstrument convert")


def test_truncated_safetensors(fixtures_dir, tmp_path):
    data = (fixtures_dir / "sg2_small" / "weights.safetensors").read_bytes()
    path = tmp_path / "half.safetensors"
    path.write_bytes(data[: len(data) // 2])
    _raises(path, "damaged or truncated")


def test_future_format_version(fixtures_dir, tmp_path):
    path = tmp_path / "future.safetensors"
    _write_ours(path, {"x": torch.zeros(1)}, "sg3", {}, version=99)
    _raises(path, "version 99")


def test_unknown_kind_in_header(tmp_path):
    path = tmp_path / "kind.safetensors"
    _write_ours(path, {"x": torch.zeros(1)}, "sg9", {"z_dim": 4})
    _raises(path, "unknown architecture kind 'sg9'")


def test_implausible_kwargs_refused_before_building(tmp_path):
    path = tmp_path / "huge.safetensors"
    _write_ours(path, {"x": torch.zeros(1)}, "sg3", {"z_dim": 512, "img_resolution": 1 << 20})
    _raises(path, "implausible architecture argument img_resolution")


def test_zip_that_is_not_a_checkpoint(tmp_path):
    import zipfile

    path = tmp_path / "data.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "hello")
    _raises(path, "not a readable torch checkpoint")


def test_torch_checkpoint_without_generator(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    _raises(path, "no rosinality 'g_ema'")


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_torch_checkpoint_with_payload(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2)}, "x": _Evil(marker)}, path)
    err = _raises(path, "refused")
    assert "exec" in str(err) and "weights_only=False" not in str(err)
    assert not marker.exists()


def test_shapes_that_do_not_fit_the_kwargs(fixtures_dir, tmp_path):
    kwargs = dict(_config(fixtures_dir, "sg3t_small")["init_kwargs"], channel_max=16)
    path = tmp_path / "edited.safetensors"
    _write_ours(path, load_file(fixtures_dir / "sg3t_small" / "weights.safetensors"), "sg3", kwargs)
    err = _raises(path, "do not fit the architecture")
    assert "wrong shape" in str(err) and "expected" in str(err)


def test_missing_and_unexpected_keys(fixtures_dir, tmp_path):
    tensors = load_file(fixtures_dir / "sg3t_small" / "weights.safetensors")
    tensors["synthesis.extra.weight"] = tensors.pop("mapping.fc1.weight")
    path = tmp_path / "keys.safetensors"
    _write_ours(path, tensors, "sg3", _config(fixtures_dir, "sg3t_small")["init_kwargs"])
    err = _raises(path, "1 missing")
    assert "mapping.fc1.weight" in str(err) and "synthesis.extra.weight" in str(err)


def test_bare_generator_pickle(fixtures_dir):
    """A pickle of the Generator object alone (not a training snapshot) is accepted too."""
    from ganinstrument.generator import convert_nvlabs
    from ganinstrument.generator.safe_pickle import safe_load

    path = fixtures_dir / "sg2_cond" / "network-stripped.pkl"
    G_ema = safe_load(path, path.read_bytes())["G_ema"]
    data = convert_nvlabs.convert(G_ema, path)
    assert data.kind == "sg2"
    _assert_same_tensors(data.tensors, load_file(fixtures_dir / "sg2_cond" / "weights.safetensors"))


def test_a_full_disk_while_writing_a_model_is_one_line_and_leaves_the_old_file(tmp_path):
    """safetensors reports its own I/O errors (a full disk) as SafetensorError, not OSError."""
    from safetensors import SafetensorError

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a model")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    target = tmp_path / "model.safetensors"
    target.write_bytes(b"the model from yesterday")
    with pytest.raises(ModelLoadError, match="model.safetensors: cannot write the model here: .*No space left"):
        safetensors_format.write_tensors({}, target, {}, save_file=full)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert target.read_bytes() == b"the model from yesterday"


def test_write_into_missing_folder(fixtures_dir, tmp_path):
    ref = load_file(fixtures_dir / "sg3t_small" / "weights.safetensors")
    target = tmp_path / "no" / "such" / "out.safetensors"
    with pytest.raises(ModelLoadError, match="cannot write"):
        safetensors_format.write(_FakeG(ref, {}), target)
