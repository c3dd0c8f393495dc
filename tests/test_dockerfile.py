"""The Dockerfile cannot be built on CI (no Docker engine); parse it and check that it has what the README
promises: a CUDA base image, uv, `uv sync --extra cuda --locked`, EGL libraries, MUJOCO_GL=egl and a
default command that trains through `anakin_tdmpc.run`."""

import json
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def steps():
    return instructions((ROOT / "Dockerfile").read_text())


def args_of(steps, keyword):
    return [rest for k, rest in steps if k == keyword]


def test_from_a_cuda_image(steps):
    assert steps[0][0] == "FROM"
    assert re.match(r"nvidia/cuda:12\.\d+(\.\d+)?-(cudnn-)?(runtime|devel)-ubuntu\d\d\.\d\d\b", steps[0][1])


def test_installs_uv_and_syncs_the_locked_cuda_extra(steps):
    text = " ".join(args_of(steps, "COPY") + args_of(steps, "RUN"))
    assert "astral-sh/uv" in text or "pip install uv" in text
    syncs = [shlex.split(r) for r in args_of(steps, "RUN") if "uv sync" in r]
    assert syncs, "no `uv sync`"
    full = syncs[-1]  # the last sync installs the project too
    assert "--locked" in full and "--no-install-project" not in full
    assert any(a == "--extra" and b == "cuda" for a, b in zip(full, full[1:])) or "--extra=cuda" in full


def test_egl_libraries_and_mujoco_gl(steps):
    apt = " ".join(r for r in args_of(steps, "RUN") if "apt-get install" in r)
    for lib in ("libegl1", "libgl1", "libglvnd0", "libosmesa6"):
        assert re.search(rf"\b{lib}\b", apt), lib
    env = " ".join(args_of(steps, "ENV"))
    assert re.search(r"\bMUJOCO_GL=egl\b", env)


def test_project_files_are_copied_before_the_final_sync(steps):
    copied = " ".join(args_of(steps, "COPY"))
    # (tests and examples too: the image runs the test suite, which runs the README's own-env example)
    for path in ("pyproject.toml", "uv.lock", "README.md", "anakin_tdmpc", "tests", "examples"):
        assert path in copied, path
    for path in ("pyproject.toml", "uv.lock", "README.md"):
        assert (ROOT / path).exists()


def test_default_command_trains(steps):
    cmds = args_of(steps, "CMD") + args_of(steps, "ENTRYPOINT")
    assert cmds, "no CMD / ENTRYPOINT"
    cmd = cmds[-1]
    argv = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    assert argv[:2] == ["uv", "run"] and "anakin_tdmpc.run" in argv
    assert argv[argv.index("anakin_tdmpc.run") - 1] == "-m"


def test_uv_run_does_not_resync_away_the_cuda_extra(steps):
    # a plain `docker run IMAGE uv run python -m anakin_tdmpc.run` (the README's command) must keep using the
    # environment synced with the cuda extra
    env = " ".join(args_of(steps, "ENV"))
    cmd = (args_of(steps, "CMD") + args_of(steps, "ENTRYPOINT"))[-1]
    assert re.search(r"\bUV_NO_SYNC=1\b", env) or "--extra" in cmd


def test_dockerignore_keeps_the_local_venv_out():
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignore
