#!/usr/bin/env bash
# The prepared GPU check: one call of under 9 minutes on a lent machine with one GPU that has Python 3.12 and
# JAX with CUDA but none of this project's other packages and no registry to fetch them from (docs/gpu.md).
#   0. the carried wheels (.whl/, from benchmarks/gpu_wheels.sh) installed with pip --target, put on PYTHONPATH
#   1. the machine: nvidia-smi, JAX's version and devices, the versions of the packages the steps import
#   2. benchmarks.throughput at the paper's 5M model and planner, N = 1, 16, 64, 256 parallel envs (cheetah-run):
#      env and agent steps/s, updates/s, compile time, peak GPU memory (no host-loop baseline)
#   3. the same at the 1M model (reduced planner), N = 1024 and 4096 (one timed iteration each: at UTD 1 an
#      iteration runs N updates one after another, and benchmarks.gpu_predict expects seconds per iteration)
#   4. `--preset paper` TD-MPC2 on walker-walk (N = 16, the 5M model) for the time left, evaluated every 10k
#      env steps; stopped by SIGTERM at its limit, it saves its last chunk and its eval returns stay logged
# Each step runs under its own time limit, so a slow one leaves the others their time; the learning run gets
# whatever the earlier steps left of BUDGET seconds (default 530).
#
#   bash benchmarks/gpu_check.sh --dry-run     # print the commands, run nothing (works on any machine)
#   bash benchmarks/gpu_check.sh               # run them (on the device machine: carry `.whl`)
#
# Everything lands in OUT (default benchmarks/results/gpu), at most 8 plain files: log.txt (all output),
# machine.txt, steps.log (steps that ended early), throughput_5M.md, throughput_1M.md, walker-walk.jsonl (the
# learning run's metrics) and results.tar.gz (the whole working folder WORK, checkpoints left out), packed again
# after every step so that a call stopped at its limit still brings back what was done.
# PYTHON (default python3) is the interpreter; SITE (default /tmp/site) is where the wheels are installed.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        *) echo "error: unknown argument '$arg' (only --dry-run)" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-benchmarks/results/gpu}
WORK=${WORK:-/tmp/gpu_check}
SITE=${SITE:-/tmp/site}
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-530}
START=$SECONDS
PLANNED=0  # seconds of the step limits so far: what --dry-run counts the learning run's limit from

if [ "$DRY" = 0 ]; then
    mkdir -p "$OUT" "$WORK"
    exec > >(tee -a "$OUT/log.txt") 2>&1
    export PYTHONUNBUFFERED=1
fi

pack() {  # the results so far, into OUT
    cp -f "$WORK/throughput_5M/throughput.md" "$OUT/throughput_5M.md" 2>/dev/null
    cp -f "$WORK/throughput_1M/throughput.md" "$OUT/throughput_1M.md" 2>/dev/null
    cp -f "$WORK/walker-walk/metrics.jsonl" "$OUT/walker-walk.jsonl" 2>/dev/null
    tar czf "$OUT/results.tar.gz" --exclude=checkpoints --exclude=xla_cache -C "$WORK" . 2>/dev/null
    return 0
}

run() {  # run LIMIT_S CMD...: print the command; unless --dry-run, run it under a time limit, then pack
    local limit=$1 t0=$SECONDS code; shift
    PLANNED=$((PLANNED + limit))
    echo "+ [${limit}s] $*"
    [ "$DRY" = 1 ] && return 0
    timeout -k 30 "$limit" "$@"
    code=$?
    echo "= exit $code after $((SECONDS - t0)) s (limit ${limit}s; $((SECONDS - START)) s since the start)"
    [ "$code" = 0 ] || echo "step ended with exit code $code (limit ${limit}s): $*" >> "$OUT/steps.log"
    pack
}

if [ -d .whl ] || [ "$DRY" = 1 ]; then
    run 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ "$DRY" = 0 ]; then
    { nvidia-smi; "$PY" -c "
import importlib.metadata as md, sys, jax
print(sys.version)
print('jax', jax.__version__, jax.devices(), jax.devices()[0].memory_stats())
for name in ('jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'mujoco', 'mujoco-mjx', 'playground', 'brax', 'tyro'):
    print(name, md.version(name))"; } > "$OUT/machine.txt" 2>&1
    cat "$OUT/machine.txt"
fi
run 210 "$PY" -m benchmarks.throughput --models 5M --num_envs 1 16 64 256 --no_host_baseline --iters 5 --reps 2 \
    --out_dir "$WORK/throughput_5M"
run 120 "$PY" -m benchmarks.throughput --models 1M --num_envs 1024 4096 --no_host_baseline --iters 1 --reps 1 \
    --out_dir "$WORK/throughput_1M"
if [ "$DRY" = 1 ]; then
    left=$((BUDGET - PLANNED))
else
    left=$((BUDGET - (SECONDS - START)))
    [ "$left" -ge 60 ] || left=60  # earlier steps overran: the run still compiles and logs something
fi
run "$left" "$PY" -m anakin_tdmpc.run --task walker-walk --preset paper --total_timesteps 1000000 --eval_every 10000 \
    --log_every 2000 --checkpoint_every 1000000 --run_dir "$WORK/walker-walk"
[ "$DRY" = 1 ] || echo "results in $OUT after $((SECONDS - START)) s"
