"""Hostile and broken pickles: each raises ModelLoadError naming the file, and nothing runs.

Every payload, if executed, would create `marker` in tmp_path; each test asserts it does not.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import sys
import types

import pytest

from ganinstrument.common.errors import ModelLoadError
from ganinstrument.generator.loading import load_generator


def _touch_cmd(marker) -> str:
    return f"{sys.executable} -c \"open({str(marker)!r}, 'w').close()\""


def _py_touch(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _reducer(func, *args):
    class Evil:
        def __reduce__(self):
            return (func, args)

    return Evil()


def _payloads(marker):
    """name -> (object to pickle, text the error must contain)."""
    return {
        "os.system": (_reducer(os.system, _touch_cmd(marker)), ".system"),  # pickled as posix.system
        "builtins.eval": (_reducer(builtins.eval, _py_touch(marker)), ".eval"),
        "builtins.exec": (_reducer(builtins.exec, _py_touch(marker)), ".exec"),
        "subprocess.Popen": (_reducer(subprocess.Popen, [sys.executable, "-c", _py_touch(marker)]), ".Popen"),
        "subprocess.call": (_reducer(subprocess.call, [sys.executable, "-c", _py_touch(marker)]), ".call"),
        "builtins.__import__": (_reducer(builtins.__import__, "antigravity"), ".__import__"),
    }


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", [2, 3, 4])
@pytest.mark.parametrize("which", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen",
                                   "subprocess.call", "builtins.__import__"])
def test_reduce_payloads_are_refused(tmp_path, which, protocol):
    marker = tmp_path / "marker"
    obj, expect = _payloads(marker)[which]
    # Wrapped like a snapshot so the payload is not the first thing in the file.
    path = _write(tmp_path, "evil.pkl", pickle.dumps({"G_ema": obj, "D": None}, protocol=protocol))
    with pytest.raises(ModelLoadError) as err:
        load_generator(path, device="cpu")
    assert str(path) in str(err.value)
    assert expect in str(err.value) and "refused" in str(err.value)
    assert not marker.exists()


def test_payload_is_real(tmp_path):
    """Control: the same payload does create the marker when unpickled normally."""
    marker = tmp_path / "marker"
    obj, _ = _payloads(marker)["builtins.exec"]
    pickle.loads(pickle.dumps(obj, protocol=4))
    assert marker.exists()


def test_handwritten_global_opcode(tmp_path):
    marker = tmp_path / "marker"
    data = b"\x80\x02cposix\nsystem\n" + pickle.dumps((_touch_cmd(marker),), protocol=2)[2:-1] + b"R."
    path = _write(tmp_path, "hand.pkl", data)
    with pytest.raises(ModelLoadError, match="posix.system"):
        load_generator(path, device="cpu")
    assert not marker.exists()


@pytest.fixture
def fake_persistence(monkeypatch):
    """A stand-in `torch_utils.persistence` so the test can write NVlabs-shaped pickles."""
    pkg = types.ModuleType("torch_utils")
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # only used for pickling in this test
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    return _reconstruct_persistent_obj


def _persistent(fn, class_name, state, module_src="# source"):
    return _reducer(fn, {"type": "class", "version": 6, "module_src": module_src,
                         "class_name": class_name, "state": state})


def test_call_smuggled_through_persistent_state(tmp_path, fake_persistence):
    marker = tmp_path / "marker"
    state = {"_parameters": {}, "_modules": {}, "payload": _reducer(builtins.exec, _py_touch(marker))}
    obj = {"G_ema": _persistent(fake_persistence, "Generator", state)}
    path = _write(tmp_path, "smuggle.pkl", pickle.dumps(obj, protocol=4))
    with pytest.raises(ModelLoadError, match="builtins.exec"):
        load_generator(path, device="cpu")
    assert not marker.exists()


def test_module_source_is_never_executed(tmp_path, fake_persistence):
    marker = tmp_path / "marker"
    src = _py_touch(marker) + "\nclass Generator:\n    pass\n"
    obj = {"G_ema": _persistent(fake_persistence, "Generator", {"_modules": {}}, module_src=src)}
    path = _write(tmp_path, "src.pkl", pickle.dumps(obj, protocol=3))
    with pytest.raises(ModelLoadError, match="SynthesisNetwork"):
        load_generator(path, device="cpu")
    assert not marker.exists()


def test_embedded_storage_bytes_are_read_weights_only(tmp_path, fake_persistence):
    """The `_load_from_bytes` trap: embedded bytes holding a payload are refused, not torch.load-ed."""
    import torch.storage

    marker = tmp_path / "marker"
    inner = pickle.dumps(_reducer(builtins.exec, _py_touch(marker)), protocol=2)
    obj = {"G_ema": _reducer(torch.storage._load_from_bytes, inner)}
    path = _write(tmp_path, "storage.pkl", pickle.dumps(obj, protocol=4))
    with pytest.raises(ModelLoadError, match="weights-only") as err:
        load_generator(path, device="cpu")
    assert "exec" in str(err.value)
    assert "weights_only=False" not in str(err.value)  # never advise the unsafe route
    assert not marker.exists()


def test_persistent_ids_are_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage-0" if obj == "x" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump({"G_ema": "x"})
    path = _write(tmp_path, "persid.pkl", buf.getvalue())
    with pytest.raises(ModelLoadError, match="persistent ids"):
        load_generator(path, device="cpu")


def test_build_cannot_modify_loader_functions(tmp_path):
    # collections.OrderedDict resolves to a loader function; BUILD on it must not set attributes.
    data = b"\x80\x02ccollections\nOrderedDict\n}X\x08\x00\x00\x00__code__K\x01sb."
    path = _write(tmp_path, "build.pkl", data)
    with pytest.raises(ModelLoadError, match="modify"):
        load_generator(path, device="cpu")


@pytest.mark.parametrize("obj", [{"a": 1, "b": [1, 2]}, [1, 2, 3], "text"])
def test_plain_data_pickle_is_not_a_model(tmp_path, obj):
    path = _write(tmp_path, "data.pkl", pickle.dumps(obj, protocol=4))
    with pytest.raises(ModelLoadError, match="not a network") as err:
        load_generator(path, device="cpu")
    assert str(path) in str(err.value) and "accepted" in str(err.value)


def test_truncated_network_pickle(tmp_path, fixtures_dir):
    data = (fixtures_dir / "sg2_small" / "network-stripped.pkl").read_bytes()
    path = _write(tmp_path, "half.pkl", data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated") as err:
        load_generator(path, device="cpu")
    assert str(path) in str(err.value)


def test_unknown_architecture_class(tmp_path, fixtures_dir):
    data = (fixtures_dir / "sg2_small" / "network-stripped.pkl").read_bytes()
    # Same length keeps the pickle's framing valid: the top-level class becomes 'GenXrator'.
    old = b"\x8c\x09Generator"
    assert old in data
    path = _write(tmp_path, "odd.pkl", data.replace(old, b"\x8c\x09GenXrator", 1))
    with pytest.raises(ModelLoadError, match="unknown architecture.*GenXrator"):
        load_generator(path, device="cpu")


def test_malformed_tf_network_is_a_clear_error(tmp_path):
    # A dnnlib Network whose state is structurally wrong (components is a list).
    data = (b"\x80\x03cdnnlib.tflib.network\nNetwork\n)\x81}(X\x0a\x00\x00\x00componentsK\x01\x85"
            b"X\x09\x00\x00\x00variables]ub\x85.")
    path = _write(tmp_path, "tf.pkl", data)
    with pytest.raises(ModelLoadError, match="malformed") as err:
        load_generator(path, device="cpu")
    assert str(path) in str(err.value)
