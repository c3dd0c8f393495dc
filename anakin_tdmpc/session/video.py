"""Eval videos: positions from the jitted eval -> frames with `mujoco.Renderer` on the host -> mp4.

Rendering needs an OpenGL backend, chosen by `choose_backend` *before* mujoco's GL is first used (MuJoCo
reads `MUJOCO_GL` when it is imported): EGL first on GPU machines, OSMesa first on CPU ones, each tried
in a short subprocess so a broken driver cannot take the training process down. A `MUJOCO_GL` set by the
user is respected (and only that one is tried). If no backend works, or rendering fails later, the run
warns once and goes on without videos.

System libraries (Debian / Ubuntu): EGL `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri` (Mesa's
software driver on a CPU; the NVIDIA driver's EGL on GPU machines), OSMesa `apt-get install libosmesa6`. mp4 encoding uses the ffmpeg binary of `imageio-ffmpeg`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import warnings
from typing import Callable, Optional

import numpy as np

HEIGHT, WIDTH = 240, 320

_PROBE = (
    "import mujoco\n"
    "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos=\"0 0 2\"/><geom size=\"0.1\"/>"
    "</worldbody></mujoco>')\n"
    "d = mujoco.MjData(m); mujoco.mj_forward(m, d)\n"
    "r = mujoco.Renderer(m, 16, 16); r.update_scene(d); img = r.render(); r.close()\n"
    "assert img.shape == (16, 16, 3)\n"
    "print('render-ok')\n"
)


@contextlib.contextmanager
def _quiet_fork():
    """JAX warns on any fork; ours only start subprocesses (fork + exec), which is safe."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def _activate(backend: str) -> None:
    """Make this process render with `backend`, whether or not mujoco is already imported."""
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    gl_context = sys.modules.get("mujoco.rendering.classic.gl_context")
    if gl_context is not None and backend in ("egl", "osmesa", "glfw"):
        # mujoco was imported earlier (e.g. in a test session): swap the context class it picked at import
        gl_context.GLContext = importlib.import_module(f"mujoco.{backend}").GLContext


def choose_backend(prefer_gpu: bool) -> tuple[Optional[str], str]:
    """Try OpenGL backends for MuJoCo -> (working backend or None, why the others failed)."""
    user = os.environ.get("MUJOCO_GL", "").strip().lower()
    candidates = [user] if user else (["egl", "osmesa"] if prefer_gpu else ["osmesa", "egl"])
    failures = []
    for backend in candidates:
        env = dict(os.environ, MUJOCO_GL=backend)
        if backend in ("egl", "osmesa") and not os.environ.get("PYOPENGL_PLATFORM"):
            env["PYOPENGL_PLATFORM"] = backend
        try:
            with _quiet_fork():
                probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
            ok = probe.returncode == 0 and "render-ok" in probe.stdout
            why = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        except (OSError, subprocess.SubprocessError) as e:
            ok, why = False, str(e)
        if ok:
            try:
                _activate(backend)
                return backend, "; ".join(failures)
            except Exception as e:  # noqa: BLE001 - e.g. PyOpenGL already bound to another platform
                why = " ".join(str(e).split())
        if backend == "osmesa" and "glGetError" in why:  # PyOpenGL's way of saying libOSMesa is missing
            why = "libOSMesa not found (apt-get install libosmesa6)"
        failures.append(f"{backend}: {why[:160]}")
    if "mujoco" not in sys.modules:
        os.environ["MUJOCO_GL"] = "disable"  # else `import mujoco` itself fails on a broken MUJOCO_GL
    return None, "; ".join(failures)


def choose_backend_here() -> tuple[Optional[str], str]:
    """choose_backend for this machine: EGL first where JAX runs on a GPU, OSMesa first on a CPU."""
    import jax

    return choose_backend(prefer_gpu=jax.default_backend() == "gpu")


def write_mp4(path: str, frames: np.ndarray, fps: float) -> None:
    """Encode [T, H, W, 3] uint8 frames as H.264 mp4, atomically (written aside, then renamed)."""
    import imageio_ffmpeg

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path[: -len(".mp4")] + ".tmp.mp4"
    height, width = frames.shape[1:3]
    with _quiet_fork():
        writer = imageio_ffmpeg.write_frames(
            tmp, (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
        )
        writer.send(None)  # starts ffmpeg
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    os.replace(tmp, path)


class VideoRecorder:
    """Renders the eval trajectory of one episode on the env's `render_model` (its MuJoCo model) and writes an mp4."""

    def __init__(self, mj_model, fps: float, warn: Callable[[str], None], height: int = HEIGHT, width: int = WIDTH):
        self.mj_model, self.fps, self.warn = mj_model, fps, warn
        self.height, self.width = height, width
        self.camera = 0 if mj_model.ncam > 0 else -1  # DMC tasks' first camera (dm_control's default view)
        self._renderer = None
        self.broken = False

    def render(self, qpos: np.ndarray, mocap_pos: np.ndarray, mocap_quat: np.ndarray) -> np.ndarray:
        import mujoco

        model = self.mj_model
        if self._renderer is None:
            self._renderer = mujoco.Renderer(model, height=self.height, width=self.width)
        data = mujoco.MjData(model)
        frames = np.empty((len(qpos), self.height, self.width, 3), np.uint8)
        for t in range(len(qpos)):
            data.qpos[:] = qpos[t]
            if model.nmocap:
                data.mocap_pos[:] = mocap_pos[t]
                data.mocap_quat[:] = mocap_quat[t]
            mujoco.mj_forward(model, data)
            self._renderer.update_scene(data, camera=self.camera)
            frames[t] = self._renderer.render()
        return frames

    def record(self, path: str, qpos, mocap_pos, mocap_quat) -> Optional[str]:
        """Render + write `path`; on any failure warn once and stop recording (training goes on)."""
        if self.broken:
            return None
        try:
            frames = self.render(np.asarray(qpos), np.asarray(mocap_pos), np.asarray(mocap_quat))
            write_mp4(path, frames, self.fps)
            return path
        except Exception as e:  # noqa: BLE001
            self.broken = True
            self.warn(f"warning: video recording failed, continuing without videos ({' '.join(str(e).split())[:200]})")
            return None

    def close(self) -> None:
        if self._renderer is not None:
            try:
                self._renderer.close()
            except Exception:  # noqa: BLE001
                pass
            self._renderer = None
