#!/usr/bin/env bash
# The prepared GPU check: one call of under 10 minutes on a machine with one GPU, everything written under
# one results folder ($OUT, or benchmarks/results/gpu):
#   1. the environment: `uv sync --extra cuda` (CUDA jaxlib), nvidia-smi and JAX's devices
#   2. benchmarks.throughput at the paper's 5M model and planner, N = 1, 16, 64, 256 parallel envs:
#      env and agent steps/s, updates/s, compile time, memory (no host-loop baseline: N = 1 is timed fused)
#   3. benchmarks.scaling: 1 device, 1 and 4 vmapped seeds (the 5M model, cheetah-run)
#   4. 200k env steps of `--preset paper` TD-MPC2 on walker-walk, evaluated every 50k env steps
# Each step has its own time limit, so a slow step leaves the others their time and what it wrote is kept.
#
#   bash benchmarks/gpu_check.sh --dry-run     # print the commands, run nothing (works on any machine)
#   bash benchmarks/gpu_check.sh               # run them
#
# PYTHON=python3 skips `uv sync` and runs the steps with that interpreter instead (a machine that cannot
# reach the package registries but has JAX with CUDA and this project's other packages installed).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        *) echo "error: unknown argument '$arg' (only --dry-run)" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-benchmarks/results/gpu}

run() {  # run LIMIT_S CMD...: print the command; unless --dry-run, run it under a time limit
    local limit=$1; shift
    echo "+ [${limit}s] $*"
    if [ "$DRY" = 0 ]; then
        timeout "$limit" "$@" || echo "step ended with exit code $? (limit ${limit}s): $*" | tee -a "$OUT/steps.log"
    fi
}

if [ -n "${PYTHON:-}" ]; then
    PY=("$PYTHON")
else
    if [ "$DRY" = 0 ]; then
        source .ci/uv.sh  # finds or installs uv, as CI does
    fi
    run 120 uv sync --extra cuda
    PY=(uv run --extra cuda python)
fi
[ "$DRY" = 0 ] && mkdir -p "$OUT"
if [ "$DRY" = 0 ]; then
    { nvidia-smi || true; "${PY[@]}" -c "import jax; print(jax.__version__, jax.devices())"; } > "$OUT/machine.txt" 2>&1 || true
fi
run 200 "${PY[@]}" -m benchmarks.throughput --models 5M --num_envs 1 16 64 256 --no_host_baseline \
    --iters 10 --reps 3 --out_dir "$OUT"
run 80 "${PY[@]}" -m benchmarks.scaling --devices 1 --seeds 1 4 --iters 4 --rounds 2 --out_dir "$OUT"
run 180 "${PY[@]}" -m anakin_tdmpc.run --task walker-walk --preset paper --total_timesteps 200000 \
    --eval_every 50000 --log_every 10000 --checkpoint_every 200000 --run_dir "$OUT/walker-walk"
echo "results in $OUT"
