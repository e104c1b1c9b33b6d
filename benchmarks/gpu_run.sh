#!/usr/bin/env bash
# On a CUDA machine with torch but without zoo's other dependencies installed: install the
# onnxruntime-gpu wheel and zoo into private folders, then check the provider path end to end
# and run the GPU benchmarks. Results go to $OUT (default ./gpu-results).
#   bash benchmarks/gpu_run.sh /path/to/onnxruntime_gpu-*.whl
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$repo/gpu-results}"
mkdir -p "$out"
wheel="$1"
python3 -m pip install -q --no-deps --no-compile --target /tmp/ortgpu "$wheel" || exit 1
python3 -m pip install -q --no-deps --no-build-isolation --no-compile --target /tmp/zoosite "$repo" || exit 1
export PYTHONPATH=/tmp/ortgpu:/tmp/zoosite ZOO_HOME=/tmp/zoo-home PYTHONUNBUFFERED=1
cd /tmp
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import onnxruntime as o, torch; print('onnxruntime', o.__version__, o.get_available_providers()); print('torch', torch.__version__, torch.cuda.get_device_name())"
  python3 -m zoo plugins
  python3 -m zoo export lenet5 --onnx
  echo "--- zoo run --provider cuda"
  python3 -m zoo run lenet5 "$repo/zoo/samples" --provider cuda --json
  echo "--- zoo run (auto)"
  python3 -m zoo run lenet5 "$repo/zoo/samples"
  echo "--- torch is not imported by zoo run"
  python3 -c "import sys; from zoo.cli import main; sys.argv=['zoo','run','lenet5','$repo/zoo/samples/digit7.png','--provider','cuda']
try: main()
except SystemExit: pass
print('torch imported:', 'torch' in sys.modules)"
  echo "--- zoo bench lenet5"
  python3 -m zoo bench lenet5 --provider cpu --provider cuda --json-out "$out/bench-lenet5.json"
} 2>&1 | tee "$out/provider-check.log"
timeout 300 python3 "$repo/benchmarks/gpu_bench.py" "$out/gpu-bench-resnet50.json" 2>&1 | tee "$out/gpu-bench-resnet50.log"
