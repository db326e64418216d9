#!/usr/bin/env bash
# The one call on the lent GPU machine (an H200, 16 cores, no network; about 15 minutes of
# device time in all, 1-2 of them to start it, at most 10 per command, 8 files back from $OUT).
#
# Phases, most important first, each under its own `timeout` and all within one budget
# (GPU_SESSION_BUDGET seconds, default 420), each logging as it goes into one folder:
#   env       nvidia-smi and gpuconv's view of the machine
#   build     gpuconv doctor -v: every kernel variant compiled on all cores into the kernel
#             cache (the runs then load, not compile), registers/smem/spills per variant
#   smoke     bench/gpu_smoke.py: one call per kernel family and method vs the numpy backend
#   pytest    pytest -m gpu (small hypothesis profile, --maxfail; the >2**31 case included)
#   bench     G1, G3, G4 against cupyx, torch NCHW/channels_last and cuDNN (bench/run_gpu.py)
#   memcheck  compute-sanitizer memcheck over the smoke calls; racecheck over the tiled ones
#   rest      G2, G5, G6 with every method next to auto, the cost-model calibration, the
#             "auto within 10% of the fastest" tests
# At the end (also after a timeout or a signal) the folder is packed into
# $OUT/gpu_session.tar.gz beside $OUT/summary.md (one line per phase) and the two files the
# repository takes back: $OUT/gpu_results.md and $OUT/cuda_cost.json.
#
#   bash bench/gpu_session.sh              on the GPU machine (device tool), results in $OUT
#   bash bench/gpu_session.sh --rehearse   here, without a GPU: the build for sm_90 into a fresh
#                                          cache and the smoke phase on the CPU emulator
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
REHEARSE=0
[ "${1:-}" = "--rehearse" ] && REHEARSE=1
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ $REHEARSE = 1 ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
OUT=${OUT:-bench/results/gpu_session}
BUDGET=${GPU_SESSION_BUDGET:-420}
START=$(date +%s)
WORK=$(mktemp -d)
DIR=$WORK/gpu_session
mkdir -p "$OUT" "$DIR"
ROWS=$DIR/phases.tsv
: > "$ROWS"
# a fresh kernel cache: the build phase measures a cold build, later phases load from it
export GPUCONV_CACHE_DIR=$DIR/kernel_cache
export GPUCONV_GPU_EXAMPLES=${GPUCONV_GPU_EXAMPLES:-12}

# phase NAME LIMIT COMMAND...: run COMMAND (output in $DIR/NAME.txt) under `timeout`, within
# what is left of the budget; record status, seconds and the log's last line.
phase() {
    local name=$1 limit=$2
    shift 2
    local left=$((START + BUDGET - $(date +%s)))
    local t=$((limit < left ? limit : left))
    if [ "$t" -lt 10 ]; then
        printf '%s\tskipped (budget spent)\t0\t-\n' "$name" >> "$ROWS"
        return
    fi
    echo "== $name (up to ${t}s)"
    local s rc status
    s=$(date +%s)
    timeout -k 10 "$t" "$@" > "$DIR/$name.txt" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="TIMEOUT after ${t}s" ;;
        *) status="FAILED rc=$rc" ;;
    esac
    local last
    last=$(grep -v '^\s*$' "$DIR/$name.txt" | tail -n 1 | cut -c1-160)
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - s))" "$last" >> "$ROWS"
    echo "   $status: $last"
}

skip() { printf '%s\tskipped (%s)\t0\t-\n' "$1" "$2" >> "$ROWS"; }

finish() {
    trap - EXIT INT TERM
    {
        echo "# GPU session $(date -u +%Y-%m-%dT%H:%MZ) ($([ $REHEARSE = 1 ] && echo rehearsal || echo GPU run))"
        echo
        echo "total $(($(date +%s) - START)) s of a ${BUDGET} s budget; logs in gpu_session.tar.gz"
        echo
        echo "| phase | status | seconds | last line |"
        echo "|---|---|---|---|"
        awk -F'\t' '{ gsub(/\|/, "/", $4); printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$ROWS"
    } > "$DIR/summary.md"
    cp "$DIR/summary.md" "$OUT/summary.md"
    cat "$DIR"/bench/gpu_results.md "$DIR"/bench_rest/gpu_results.md > "$OUT/gpu_results.md" 2> /dev/null
    [ -s "$OUT/gpu_results.md" ] || rm -f "$OUT/gpu_results.md"
    [ -f "$DIR/cuda_cost.json" ] && cp "$DIR/cuda_cost.json" "$OUT/cuda_cost.json"
    tar -C "$WORK" --exclude=gpu_session/kernel_cache -czf "$OUT/gpu_session.tar.gz" gpu_session
    cat "$OUT/summary.md"
    rm -rf "$WORK"
}
trap finish EXIT
trap 'exit 130' INT TERM

if [ $REHEARSE = 1 ]; then
    phase env 30 "$PY" -c "from gpuconv.doctor import environment; [print(f'{a:>14}: {b}') for a, b in environment()]"
    phase build 300 "$PY" -m gpuconv doctor --arch sm_90 -v
    phase smoke 120 "$PY" bench/gpu_smoke.py --emulate --json "$DIR/smoke.json"
    phase pytest-collect 60 "$PY" -m pytest -q -m gpu --collect-only -p no:cacheprovider tests
    for p in pytest bench memcheck rest; do skip $p "rehearsal: needs a GPU"; done
    exit 0
fi

phase env 30 bash -c "nvidia-smi; $PY -c \"from gpuconv.doctor import environment; [print(f'{a:>14}: {b}') for a, b in environment()]\""
phase build 120 "$PY" -m gpuconv doctor -v
phase smoke 90 "$PY" bench/gpu_smoke.py --json "$DIR/smoke.json"
phase pytest 180 "$PY" -m pytest -q -m gpu -p no:cacheprovider --maxfail=10 -k "not auto_is_within" tests
phase bench 150 "$PY" -m bench.run_gpu --rows G1,G3,G4 --out "$DIR/bench"
if command -v compute-sanitizer > /dev/null; then
    phase memcheck 100 compute-sanitizer --tool memcheck --error-exitcode 9 "$PY" bench/gpu_smoke.py
    phase racecheck 60 compute-sanitizer --tool racecheck --error-exitcode 9 "$PY" bench/gpu_smoke.py -k tiled
else
    skip memcheck "compute-sanitizer not found"
fi
phase bench-rest 120 "$PY" -m bench.run_gpu --rows G2,G5,G6 --out "$DIR/bench_rest"
phase calibrate 60 "$PY" bench/calibrate_cuda.py --out "$DIR/cuda_cost.json"
phase auto 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider -k auto_is_within tests
