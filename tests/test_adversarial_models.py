"""Hostile .pt files: every one is refused in one line naming the file (and the global it would
have imported, where there is one), and nothing in it runs."""

from __future__ import annotations

import os
import random
import struct
import sys
import types

import pytest
import torch

from ganinstrument.common.errors import ModelLoadError
from ganinstrument.generator.loading import load_generator


class _System:
    """Pickles as a call of os.system that would create `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _refusal(path) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_generator(path, device="cpu")
    text = str(err.value)
    assert text.startswith(f"{path}: "), text
    assert "\n" not in text and len(text) < 400, text  # one clear line, not torch's essay
    assert "weights_only=False" not in text and "trust" not in text  # never the unsafe advice
    return text


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "old-format"])
def test_os_system_payload_is_named_and_never_run(tmp_path, zipped):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2)}, "x": _System(marker)}, path,
               _use_new_zipfile_serialization=zipped)
    text = _refusal(path)
    assert "refused" in text and f"{os.system.__module__}.system" in text  # posix.system on Linux
    assert not marker.exists()


def test_class_from_an_arbitrary_module_is_named(tmp_path, monkeypatch):
    module = types.ModuleType("stagehand_payload")

    class Payload:
        pass

    Payload.__module__, Payload.__qualname__ = module.__name__, "Payload"
    module.Payload = Payload
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "payload.pt"
    torch.save({"g_ema": Payload()}, path)
    monkeypatch.delitem(sys.modules, module.__name__)  # as on the performer's machine: no such module
    text = _refusal(path)
    assert "stagehand_payload.Payload" in text


def _good_checkpoint(path):
    torch.save({"g_ema": {"style.1.weight": torch.zeros(64, 64)}, "latent_avg": torch.zeros(64)}, path)
    return path.read_bytes()


def test_truncated_checkpoint(tmp_path):
    data = _good_checkpoint(tmp_path / "good.pt")
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    text = _refusal(path)
    assert "not a readable torch checkpoint" in text and "damaged or truncated" in text  # what to do


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "empty" in _refusal(path)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
    _refusal(path)


@pytest.mark.parametrize("field", ["compressed", "uncompressed", "offset"])
def test_zip_with_a_lying_central_directory(tmp_path, field):
    """The central directory claims sizes or an offset the file does not have."""
    data = bytearray(_good_checkpoint(tmp_path / "good.pt"))
    at = data.find(b"PK\x01\x02")  # the first central directory entry
    assert at > 0
    where = {"compressed": at + 20, "uncompressed": at + 24, "offset": at + 42}[field]
    struct.pack_into("<I", data, where, 0xFFFFFF00)
    path = tmp_path / "lying.pt"
    path.write_bytes(bytes(data))
    assert "damaged or truncated" in _refusal(path)
