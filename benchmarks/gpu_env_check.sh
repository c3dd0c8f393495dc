#!/usr/bin/env bash
# The lent GPU machine's Python, rebuilt here on the CPU, with the carried wheels installed the way
# benchmarks/gpu_check.sh installs them there: proof, before any GPU time is spent, that the call's code
# imports and runs on that machine's versions.
#
#   bash benchmarks/gpu_env_check.sh               # a few minutes on one core (most of it XLA compiling)
#   PYTHON312=/path/to/python3.12 bash benchmarks/gpu_env_check.sh    # a Python 3.12 that uv does not find
#
# 1. a Python 3.12 virtual environment with the image's packages at the image's versions where they are known
#    (jax / jaxlib 0.11.2, here for the CPU; numpy 2.5.2), the others as PyPI served them on the date the
#    image's package list was read (uv's --exclude-newer); a package that benchmarks/gpu_image_packages.txt
#    (the image's list) lacks but a dependency pulled in here is removed again;
# 2. .whl/*.whl (benchmarks/gpu_wheels.sh fetches them if .whl/ is missing) installed with pip --target into
#    a folder put on PYTHONPATH, nothing resolved, exactly as on the GPU machine;
# 3. in it: the versions, a tiny training run on an MJX task through `python -m anakin_tdmpc.run` (TensorBoard
#    events and a checkpoint included), benchmarks.throughput on the tiny model, benchmarks.gpu_predict's
#    command line, `gpu_check.sh --dry-run`, and tests/test_fused.py and tests/test_gpu_check.py.
# Each check prints PASS or FAIL; the exit code is the number that failed.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE_DATE=2026-11-17  # when the image's package list was read (benchmarks/gpu_image_packages.txt)
ENV_DIR=${ENV_DIR:-/tmp/anakin-gpu-env}
SITE=${SITE:-/tmp/anakin-gpu-site}
WORK=${WORK:-/tmp/anakin-gpu-env-check}
IMAGE=(jax==0.11.2 jaxlib==0.11.2 numpy==2.5.2 flax optax orbax-checkpoint chex rich scipy lxml tqdm pillow
       matplotlib protobuf pyyaml absl-py etils fsspec zipp packaging typing-extensions msgpack tensorstore
       ml-dtypes pytest pytest-timeout pytest-xdist)

source .ci/uv.sh  # UV: a working uv (installed if missing)
[ -d .whl ] || bash benchmarks/gpu_wheels.sh

echo "== 1. the image's packages in $ENV_DIR (Python ${PYTHON312:-3.12}, PyPI as of $IMAGE_DATE)"
"${UV[@]}" venv --quiet --seed --clear --python "${PYTHON312:-3.12}" "$ENV_DIR"
PY=$ENV_DIR/bin/python
"${UV[@]}" pip install --quiet --python "$PY" --exclude-newer "$IMAGE_DATE" "${IMAGE[@]}"
"$PY" - <<'EOF' > "$ENV_DIR/extra.txt"
import importlib.metadata as md, re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
image = {norm(l.strip()) for l in open("benchmarks/gpu_image_packages.txt") if l.strip() and not l.startswith("#")}
have = {norm(d.metadata["Name"]): d.version for d in md.distributions()}
print(f"Python {sys.version.split()[0]}; " + ", ".join(f"{n} {have[n]}" for n in
      ["jax", "jaxlib", "numpy", "flax", "optax", "orbax-checkpoint", "chex", "rich", "scipy", "protobuf", "etils"]),
      file=sys.stderr)
print(" ".join(sorted(set(have) - image)))
EOF
extra=$(cat "$ENV_DIR/extra.txt")
if [ -n "$extra" ]; then  # pulled in by a dependency here (tzdata), absent there
    echo "not in the image, removed: $extra"
    "${UV[@]}" pip uninstall --quiet --python "$PY" $extra
fi

echo "== 2. the carried wheels, installed as on the GPU machine"
rm -rf "$SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
export PYTHONPATH=$SITE JAX_PLATFORMS=cpu PYTHONUNBUFFERED=1
# compile fast: these checks test that things run, not how fast (the tests set the same)
export XLA_FLAGS=--xla_backend_optimization_level=0
rm -rf "$WORK"
mkdir -p "$WORK"

FAILED=0
check() {  # check NAME CMD...: run CMD, log to $WORK/NAME.log, print PASS/FAIL with its time
    local name=$1 t0=$SECONDS; shift
    if "$@" > "$WORK/$name.log" 2>&1; then
        echo "PASS $name ($((SECONDS - t0)) s)"
    else
        echo "FAIL $name ($((SECONDS - t0)) s): last lines of $WORK/$name.log:"
        tail -n 15 "$WORK/$name.log" | sed 's/^/    /'
        FAILED=$((FAILED + 1))
    fi
}
echo "== 3. the checks (logs in $WORK)"
check versions "$PY" -c "
import importlib.metadata as md, sys, jax, mujoco, mujoco.mjx, mujoco_playground, brax, tyro, tensorboardX
for m in (mujoco, brax, tyro, tensorboardX, mujoco_playground):
    assert m.__file__.startswith('$SITE'), m.__file__  # the carried wheels, not something else
print(sys.version, jax.__version__, jax.devices(), mujoco.__version__, md.version('mujoco-mjx'), brax.__version__)"
check train "$PY" -m anakin_tdmpc.run --task walker-walk --num_envs 2 --model_size 1 --latent_dim 16 --mlp_dim 32 \
    --enc_dim 32 --num_samples 16 --num_elites 4 --num_pi_trajs 2 --iterations 2 --batch_size 8 --seed_steps 40 \
    --episode_length 20 --total_timesteps 160 --eval_every 160 --eval_episodes 2 --log_every 80 \
    --checkpoint_every 160 --run_dir "$WORK/run"
check run_outputs "$PY" -c "
import json, os
rows = [json.loads(l) for l in open('$WORK/run/metrics.jsonl')]
assert rows[-1]['env_steps'] == 160 and any('eval/episode_return' in r for r in rows), rows
assert os.listdir('$WORK/run/tensorboard') and os.listdir('$WORK/run/checkpoints'), os.listdir('$WORK/run')"
check throughput "$PY" -m benchmarks.throughput --quick --models tiny --num_envs 1 --iters 2 --reps 1 \
    --no_host_baseline --out_dir "$WORK/throughput"
check predict_flags "$PY" -m benchmarks.gpu_predict --help
check dry_run env PYTHON="$PY" bash benchmarks/gpu_check.sh --dry-run
check tests "$PY" -m pytest -q -n 0 -p no:cacheprovider tests/test_fused.py tests/test_gpu_check.py
echo "$FAILED check(s) failed"
exit "$FAILED"
