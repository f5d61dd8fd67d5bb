"""Package-level promises: importing does nothing heavy; errors fit two ways of catching."""

from __future__ import annotations

import subprocess
import sys

from ganinstrument.common.errors import DeviceError, GanInstrumentError, ModelLoadError


def test_import_does_not_load_torch_or_touch_devices():
    code = "import sys, ganinstrument; print('torch' in sys.modules, ganinstrument.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False"


def test_errors_are_ours_and_builtin():
    err = ModelLoadError("/x/model.pkl", "truncated file", "download it again")
    assert isinstance(err, GanInstrumentError) and isinstance(err, ValueError)
    assert str(err) == "/x/model.pkl: truncated file (download it again)"
    assert isinstance(DeviceError("no cuda"), OSError)


def test_the_instrument_is_where_scripts_found_it_before_the_rooms():
    """`ganinstrument.Instrument` (the README's) and `ganinstrument.instrument.Instrument` (a
    module path scripts used before the package had rooms) are the facade, loaded on use."""
    code = ("import sys, ganinstrument.instrument as i; light = 'torch' not in sys.modules; "
            "from ganinstrument.instrument import Instrument; import ganinstrument; "
            "from ganinstrument.instrument.facade import Instrument as F; "
            "print(light, Instrument is F is ganinstrument.Instrument)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
