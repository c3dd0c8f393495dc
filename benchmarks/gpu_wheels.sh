#!/usr/bin/env bash
# The wheels that the lent GPU machine lacks, fetched here into .whl/ (git-ignored) so that they travel with
# the working tree: that machine reaches no package registry. Its image already holds Python 3.12, jax /
# jaxlib 0.11.2 with the CUDA 13 plugin, flax, optax, orbax-checkpoint, chex, numpy, scipy, rich, lxml,
# tqdm, pillow, matplotlib, protobuf, pyyaml, absl-py, etils, pytest (docs/gpu.md); these are what a
# training run, benchmarks.throughput and the tests import on top of it. The pins are uv.lock's
# (tests/test_gpu_check.py checks that they agree); each wheel is fetched without its dependencies, so every
# one that the image lacks and that gets imported is named here.
#
# Left out on purpose (none is imported by training, the benchmarks or tests/test_fused.py):
#   warp-lang (playground, ~130 MB; mujoco.mjx imports it inside try/except and runs without it),
#   dm-control (the dog and quadruped tasks only), wandb (--track only), rliable (plots only),
#   imageio-ffmpeg (--capture_video only), mediapy (playground's notebooks), flask / flask-cors (brax's
#   viewer), pyopengl (mujoco's renderer under MUJOCO_GL=egl/osmesa), websockets (mujoco's viewer).
#
#   bash benchmarks/gpu_wheels.sh        # -> .whl/*.whl (about 42 MiB), then carry `.whl` in the GPU call
#
# PYTHON (default python3) is the interpreter whose pip downloads; any Python works, the wheels are chosen
# for CPython 3.12 on manylinux x86-64 whatever runs pip.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
    mujoco==3.17.0           # the physics: MJX builds its models from MuJoCo's
    mujoco-mjx==3.17.0       # MuJoCo in JAX: the envs' step
    playground==0.2.0        # mujoco_playground: the DeepMind Control models our tasks port
    brax==0.14.2             # imported by playground's wrappers; the brax/ tasks
    jaxopt==0.8.5            # imported by brax
    trimesh==5.2.0           # imported by mujoco.mjx (convex meshes)
    glfw==2.11.0             # imported by mujoco (its renderer module, whatever MUJOCO_GL says)
    ml-collections==1.1.0    # playground's and our env configs
    tyro==1.0.17             # the command lines (anakin_tdmpc.run, benchmarks)
    docstring-parser==0.18.0 # tyro's flag help
    typeguard==4.6.0         # tyro's type checks
    tensorboardx==2.6.5      # a run's TensorBoard event files (--tensorboard, on by default)
)
LIMIT_MIB=56  # what may travel: 64 MiB with the working tree (about 2 MiB) and some room for results

rm -rf .whl
mkdir -p .whl
"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"

found=$(ls .whl/*.whl | wc -l)
if [ "$found" != "${#WHEELS[@]}" ]; then
    echo "error: ${#WHEELS[@]} wheels named, $found in .whl/" >&2
    exit 1
fi
ls -l .whl/*.whl | awk '{printf "%8.2f MiB  %s\n", $5 / 2^20, $9; total += $5}
                        END {printf "%8.2f MiB  total\n", total / 2^20}'
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
if [ "$total" -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
    echo "error: the wheels take more than ${LIMIT_MIB} MiB" >&2
    exit 1
fi
