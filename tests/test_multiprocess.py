"""Two local processes on 127.0.0.1 training one run through jax.distributed (gloo CPU collectives)."""

import json
import socket
import subprocess
import sys

import numpy as np

from conftest import TINY, environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_in_lockstep(tmp_path):
    """Two local processes, one CPU device each, one run through jax.distributed: both finish (every chunk
    checks on device that the parameters are bitwise identical across processes, or the run stops with
    exit 3), process 0 alone writes the metrics, and the checkpoint holds both buffer shards."""
    run_dir, port = tmp_path / "run", free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "anakin_tdmpc.run", *TINY, "--run_dir", str(run_dir), "--coordinator_address",
         f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)],
        env=environment(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(o[-3000:] for o in outs)
    assert "scaling out: 2 cpu device(s) in 2 process(es)" in outs[0] and "env steps 480/480" in outs[0]
    assert "env steps" not in outs[1]  # only process 0 logs
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["env_steps"] == 480 and np.isfinite(rows[-1]["eval/episode_return"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["parallel"]["devices"] == 2 and config["parallel"]["processes"] == 2
    saved = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] == 480


_BRAX_IN_PROCESS = """
import sys
import jax
import numpy as np
from anakin_tdmpc.loop import parallel
parallel.initialize_distributed(sys.argv[1], 2, int(sys.argv[2]))
from anakin_tdmpc.envs import brax_tasks
task = brax_tasks.load("brax/inverted_pendulum")
state = jax.jit(task.step)(jax.jit(task.reset)(jax.random.PRNGKey(0)), np.zeros(task.action_size, np.float32))
print("obs", task.observation_size, np.asarray(state.obs).shape, "on", jax.process_index())
"""


def test_a_brax_task_loads_and_steps_in_every_process():
    """brax builds its MJX model on jax.devices()[0], process 0's device: process 1 has it put on its own."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", _BRAX_IN_PROCESS, f"127.0.0.1:{port}", str(i)],
                              env=environment(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(o[-3000:] for o in outs)
    assert all(f"obs 4 (4,) on {i}" in out for i, out in enumerate(outs))
