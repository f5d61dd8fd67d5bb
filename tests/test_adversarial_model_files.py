"""Model files as they arrive damaged or forged: real conformance files (NVlabs pickle, legacy
TensorFlow pickle, rosinality .pt, our .safetensors) cut short, overwritten with junk in a random
place, or with a lying length in their header. Fuzzed with hypothesis. The invariant: a file
either loads as a generator or is refused with one GanInstrumentError naming the file, short
and on one line; never another exception, never a hang, never anything run."""

from __future__ import annotations

import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganinstrument.common.errors import GanInstrumentError
from ganinstrument.generator import load_generator
from ganinstrument.generator.loading import save_safetensors

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def originals(fixtures_dir, tmp_path_factory) -> dict[str, bytes]:
    ours = tmp_path_factory.mktemp("ours") / "sg2.safetensors"
    save_safetensors(load_generator(fixtures_dir / "sg2_small" / "network-stripped.pkl", device="cpu"), ours)
    return {
        "nvlabs.pkl": (fixtures_dir / "sg2_small" / "network-stripped.pkl").read_bytes(),
        "tf.pkl": (fixtures_dir / "sg2_small" / "tf-format.pkl").read_bytes(),
        "rosinality.pt": (fixtures_dir / "rosinality_small" / "checkpoint.pt").read_bytes(),
        "ours.safetensors": ours.read_bytes(),
    }


def _load_or_refuse(path) -> None:
    try:
        G = load_generator(path, device="cpu")
    except GanInstrumentError as exc:
        text = str(exc)
        assert path.name in text, text
        assert "\n" not in text and len(text) < 600, text
        return
    assert isinstance(G, torch.nn.Module)


KINDS = st.sampled_from(["nvlabs.pkl", "tf.pkl", "rosinality.pt", "ours.safetensors"])


@FUZZ
@given(kind=KINDS, keep=st.floats(min_value=0.0, max_value=0.999))
def test_a_file_cut_short_is_refused_in_one_line(originals, tmp_path, kind, keep):
    data = originals[kind]
    path = tmp_path / f"cut-{kind}"
    path.write_bytes(data[: int(len(data) * keep)])
    _load_or_refuse(path)


@FUZZ
@given(kind=KINDS, where=st.floats(min_value=0.0, max_value=1.0), junk=st.binary(min_size=1, max_size=64))
def test_junk_written_anywhere_in_a_file_is_refused_or_loads(originals, tmp_path, kind, where, junk):
    data = bytearray(originals[kind])
    at = min(int(len(data) * where), len(data) - len(junk))
    data[at:at + len(junk)] = junk
    path = tmp_path / f"junk-{kind}"
    path.write_bytes(bytes(data))
    _load_or_refuse(path)


@FUZZ
@given(length=st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=4096)))
def test_a_safetensors_header_that_lies_about_its_length(originals, tmp_path, length):
    data = originals["ours.safetensors"]
    path = tmp_path / "lying.safetensors"
    path.write_bytes(struct.pack("<Q", length) + data[8:])
    _load_or_refuse(path)


def test_a_forged_memo_index_is_refused_before_it_costs_memory(originals, tmp_path):
    """One LONG_BINPUT's 4-byte index set to 2**31 - 1 made the C unpickler grow its memo
    table to that size first (22 GB for a 1 MB file). Loaded in a child capped at 3 GB of
    address space, so a regression fails here instead of swapping the machine."""
    import io
    import pickletools
    import subprocess
    import sys

    data = bytearray(originals["tf.pkl"])
    puts = [pos for op, _arg, pos in pickletools.genops(io.BytesIO(bytes(data))) if op.name == "LONG_BINPUT"]
    data[puts[-1] + 1:puts[-1] + 5] = struct.pack("<I", 2**31 - 1)
    path = tmp_path / "memo-bomb.pkl"
    path.write_bytes(bytes(data))
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
              "from ganinstrument.generator import load_generator\n"
              "from ganinstrument.common.errors import GanInstrumentError\n"
              "try:\n    load_generator(sys.argv[1], device='cpu')\n"
              "except GanInstrumentError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "memo-bomb.pkl: the pickle is damaged: it files an object under number 2147483647" in result.stdout


def test_a_refusal_is_one_line_whatever_the_reason_quotes():
    """Found by fuzzing: a damaged NVlabs pickle made torch raise a TypeError whose text runs
    over several lines, and the refusal quoted it whole."""
    from ganinstrument.common.errors import ModelLoadError

    exc = ModelLoadError("net.pkl", "could not read the pickle: TypeError: set_() received\n * ()\n * (x)",
                         "try\nagain")
    assert str(exc) == "net.pkl: could not read the pickle: TypeError: set_() received * () * (x) (try again)"
    long = str(ModelLoadError("net.pkl", "x" * 50_000_000))  # (read only at its start)
    assert "\n" not in long and len(long) < 1100 and long.endswith("(50000000 characters)")
    shapes = "; ".join(f"b{i}.weight: [512, 512, 3, 3] here, [256, 256, 3, 3] in the file" for i in range(12))
    assert shapes in str(ModelLoadError("net.pkl", shapes))  # a reason we write is kept whole
