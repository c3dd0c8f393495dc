# anakin_tdmpc on an NVIDIA GPU.
#   docker build -t anakin-tdmpc .
#   docker run --gpus all anakin-tdmpc                                   # = the CMD below
#   docker run --gpus all anakin-tdmpc uv run python -m anakin_tdmpc.run --algo tdmpc2 --task walker-walk
#   docker run --gpus all -v $PWD/runs:/app/runs anakin-tdmpc ...          # keep the run dirs
# JAX's CUDA 12 wheels (the `cuda` extra) bring their own CUDA / cuDNN libraries; the host needs an
# NVIDIA driver >= 525 and the NVIDIA container toolkit.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# EGL (headless GPU rendering for eval videos) with OSMesa as the software fallback; ffmpeg for mp4s
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates libegl1 libgl1 libglvnd0 libosmesa6 ffmpeg \
    && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /usr/local/bin/

ENV UV_PYTHON=3.11 \
    UV_PYTHON_INSTALL_DIR=/opt/uv-python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    MUJOCO_GL=egl \
    PYOPENGL_PLATFORM=egl

WORKDIR /app
# dependencies first (cached layer), then the project itself
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --extra cuda --locked --no-install-project
COPY anakin_tdmpc ./anakin_tdmpc
COPY benchmarks ./benchmarks
COPY tests ./tests
COPY examples ./examples
RUN uv sync --extra cuda --locked

# `uv run ...` inside the container uses the synced CUDA environment as is (no re-sync, no network)
ENV UV_NO_SYNC=1

CMD ["uv", "run", "python", "-m", "anakin_tdmpc.run", "--algo", "tdmpc2"]
