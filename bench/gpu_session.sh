#!/usr/bin/env bash
# One call on the lent GPU machine (no network there): the GPU tests, a compute-sanitizer
# memcheck over a representative subset, the doctor for this GPU, the cost-model
# calibration (copy $OUT/cuda_cost.json to gpuconv/data/ afterwards) and the G bench.
# Usage (device tool):  bash bench/gpu_session.sh      results land in $OUT
set -u
export PYTHONPATH=$PWD
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -m gpuconv doctor > "$OUT/doctor.txt" 2>&1; echo "doctor rc=$?"
python -m pytest -q -m gpu -p no:cacheprovider tests > "$OUT/pytest_gpu.txt" 2>&1; echo "pytest -m gpu rc=$?"
tail -3 "$OUT/pytest_gpu.txt"
compute-sanitizer --tool memcheck --error-exitcode 9 python -m pytest -q -m gpu -p no:cacheprovider \
    tests/test_correlate.py tests/test_cuda_gpu.py -k "every_mode_boundary or pad_wider or large_images or conv2d_torch_tensors or conv1d_on_gpu or float32_equals_cudnn" \
    > "$OUT/memcheck.txt" 2>&1
echo "memcheck rc=$?"; tail -3 "$OUT/memcheck.txt"
python bench/calibrate_cuda.py --out "$OUT/cuda_cost.json" > "$OUT/calibrate.txt" 2>&1; echo "calibrate rc=$?"
python -m bench.run_gpu --out "$OUT" 2>&1 | tee "$OUT/bench_gpu.txt" | tail -22
