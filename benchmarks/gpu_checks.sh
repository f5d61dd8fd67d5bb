#!/usr/bin/env bash
# Every check that needs an NVIDIA GPU, in as few device calls as the workplace's `device` tool
# allows (10 minutes a call, 30 minutes a session, 64 MiB carried; its machines have Python
# 3.12 with PyTorch, and nothing can be downloaded there).
#
#   bash benchmarks/gpu_checks.sh prepare   here, with internet: fills .gpu/ (git-ignored) with
#                                           .gpu/fixtures  the conformance data (~22 MB)
#                                           .gpu/wheels    what the device lacks, for Python 3.12
#                                                          (PyAV, soundfile, ndi-python...: ~48 MB)
#   then, with the device tool, two calls (each carries one of the two folders):
#     run(command="bash benchmarks/gpu_checks.sh models", carry=[".gpu/fixtures"])
#     run(command="bash benchmarks/gpu_checks.sh engine", carry=[".gpu/wheels"])
#   models: nvidia-smi, generator speed (benchmarks/generator.py), the conformance fixtures on
#           CUDA (tests/test_conformance_device.py), frames with every target moving under
#           PyTorch's sync debug mode (tests/test_cuda_path.py), and the cost of each activation
#           bend on sg2-1024-f (benchmarks/bends.py).                                (~6 minutes)
#   engine: the CUDA-only unit tests (Spout's pinned readback, the GPU YUV conversion), whether
#           NVENC opens, and the engine benchmark on CUDA (demo, sg2-512-f, sg2-1024-f; sinks
#           null, record, ndi), one minute each.                                      (~6 minutes)
# Results go to $OUT (the device tool brings that folder back), or .gpu/out here.
# DEVICE=cpu runs the same commands on a machine without a GPU (a dry run of this script).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/.gpu/out}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-1}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT/.gpu/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
WHEELS="av soundfile cffi pycparser mido python-osc ndi-python"

step() {  # step NAME COMMAND...: run it, its output into $OUT/NAME.txt, and say how it went
    local name=$1; shift
    local start=$SECONDS
    "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name: exit $rc, $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
    tail -n 3 "$OUT/$name.txt" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}

case "${1:-}" in
prepare)
    mkdir -p .gpu/wheels .gpu/fixtures
    cp -r "${GANINSTRUMENT_FIXTURES:-$ROOT/../shared/fixtures}/." .gpu/fixtures/
    pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 \
        --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any --no-deps -d .gpu/wheels $WHEELS
    du -sh .gpu/fixtures .gpu/wheels
    ;;
models)
    step nvidia-smi nvidia-smi
    step versions "$PY" -c "import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
    step generator "$PY" benchmarks/generator.py --device "$DEVICE" --max-seconds 30
    export GANINSTRUMENT_FIXTURES=$ROOT/.gpu/fixtures
    step conformance "$PY" -m pytest -q -p no:cacheprovider -ra tests/test_conformance_device.py
    step cuda-path "$PY" -m pytest -q -p no:cacheprovider -ra tests/test_cuda_path.py
    step bends "$PY" benchmarks/bends.py --device "$DEVICE" --configs sg2-1024-f --repeats 5
    ;;
engine)
    step pip "$PY" -m pip install -q --no-index --no-deps --find-links .gpu/wheels --target .gpu/site $WHEELS
    step tests-cuda "$PY" -m pytest -q -p no:cacheprovider -ra tests/test_yuv.py tests/test_outputs_spout.py
    step nvenc "$PY" -c "from ganinstrument.outputs.recorder import codec_opens; \
print('h264_nvenc opens:', codec_opens('h264_nvenc', 1920, 1080, 60))"
    step engine "$PY" benchmarks/engine.py --device "$DEVICE" --no-jack --minutes "$MINUTES" \
        --configs demo sg2-512-f sg2-1024-f --sinks null,record,ndi
    ;;
*)
    echo "usage: bash benchmarks/gpu_checks.sh prepare|models|engine (see the top of this file)" >&2
    exit 2
    ;;
esac
