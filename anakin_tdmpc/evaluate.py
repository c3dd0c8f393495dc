"""`python -m anakin_tdmpc.evaluate --run_dir R`: evaluate a saved agent without training.

Loads the run's config.json and one of its checkpoints (the latest by default), runs `--episodes` full
episodes per seed as jitted, vmapped, deterministic episodes (planning in eval mode, with the step
schedules of the checkpoint's agent step), prints mean / std / min / max, and writes
`<run_dir>/eval_<env_steps>.json` (and `<run_dir>/videos/eval_<env_steps>.mp4` with `--capture_video`). Metrics and checkpoints are never touched. Works on runs of either algorithm, with any
number of seeds and devices: only the agent's parameters are read from the checkpoint (it holds one copy
of them), and the episodes run on one device, with the training's own evaluation program and the keys of
the run's evaluation at that checkpoint (from `--seed`, default the run's seed): the same command gives the
same returns, and on a single-device run with --episodes = its --eval_episodes they are the returns the run
logged there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Optional

import numpy as np

from anakin_tdmpc.errors import EvalError


@dataclasses.dataclass
class EvalArgs:
    """Evaluate a saved agent of a run dir: returns of deterministic episodes, optional videos."""

    run_dir: str
    """the run to evaluate (a folder written by python -m anakin_tdmpc.run)"""
    checkpoint: Optional[int] = None
    """env steps of the checkpoint to load (default: the latest)"""
    episodes: int = 10
    """episodes per seed, run in parallel"""
    capture_video: bool = False
    """render the first episode (of the first seed) to <run_dir>/videos/eval_<env_steps>.mp4"""
    seed: Optional[int] = None
    """random seed of the episodes (default: the run's --seed)"""


def _saved_args(run_dir: str):
    from anakin_tdmpc.config import Args
    from anakin_tdmpc.session.checkpoint import saved_flags

    path = os.path.join(run_dir, "config.json")
    if not os.path.isdir(run_dir):
        raise EvalError(f"no run dir {run_dir}")
    try:
        with open(path) as f:
            saved = saved_flags(json.load(f))
    except FileNotFoundError:
        raise EvalError(f"{run_dir} holds no run (no config.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvalError(f"cannot read {path} ({' '.join(str(e).split())[:200]})") from None
    known = {f.name for f in dataclasses.fields(Args)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise EvalError(f"{path} has flags this version does not know ({', '.join(unknown)})")
    return Args(**saved)


def load_agent(run_dir: str, step: Optional[int] = None):
    """(args, env, agent, fused loop, agent state [S, ...], the checkpoint's agent steps, its env steps, its
    loop iterations) of checkpoint `step` (default: the latest) of the run in `run_dir`;
    EvalError if it cannot."""
    import jax

    from anakin_tdmpc.build import assemble
    from anakin_tdmpc.config import resolve
    from anakin_tdmpc.session import checkpoint

    args = _saved_args(run_dir)
    if not checkpoint.has_checkpoints(run_dir):
        raise EvalError(f"{run_dir} has no checkpoint yet")
    reader = checkpoint.Checkpointer(run_dir, args.keep_checkpoints, create=False)
    try:
        steps = reader.steps()
        step = steps[-1] if step is None else step
        if step not in steps:
            raise EvalError(f"{run_dir} has no checkpoint at env step {step}; it has {', '.join(map(str, steps))}")
        meta = reader.read_meta(step)
        arrays = reader.read_arrays(step, meta)  # hash-checked
    except checkpoint.CheckpointError as e:
        raise EvalError(str(e)) from None
    finally:
        reader.close()
    seed_steps = meta.get("config", {}).get("schedule", {}).get("seed_steps")
    try:
        env, agent, loop = assemble(resolve(args, 1, run_seed_steps=seed_steps))
    except ValueError as e:
        raise EvalError(str(e)) from None
    # the checkpoint's agent leaves are the first ones of the carry, each [S, ...] (one copy for all devices)
    abstract = jax.eval_shape(jax.vmap(agent.init), jax.random.split(jax.random.key(0), args.num_seeds))
    leaves, treedef = jax.tree_util.tree_flatten(abstract)
    manifest = meta["manifest"]
    stored = [(entry, a) for entry, a in zip(manifest, arrays) if entry["path"].startswith(".agent")
              and not entry["path"].startswith(".agent_steps")]
    if len(stored) != len(leaves) or any(tuple(e["shape"]) != tuple(leaf.shape) for (e, _), leaf in zip(stored, leaves)):
        raise EvalError(f"checkpoint {step} of {run_dir} does not fit this code's agent (written by another version)")
    state = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for _, a in stored])
    agent_steps = next(int(np.asarray(a).reshape(-1)[0]) for e, a in zip(manifest, arrays) if e["path"] == ".agent_steps")
    return args, env, agent, loop, state, agent_steps, step, int(meta["host"]["iters_done"])


def evaluate(eval_args: EvalArgs) -> dict:
    """Run the evaluation of `eval_args` -> the dict written to eval_<env_steps>.json."""
    import jax
    import jax.numpy as jnp

    from anakin_tdmpc.loop.parallel import Parallel

    if eval_args.episodes < 1:
        raise EvalError(f"--episodes must be positive, got {eval_args.episodes}")
    args, env, agent, loop, state, agent_steps, step, iters = load_agent(eval_args.run_dir, eval_args.checkpoint)
    seed = args.seed if eval_args.seed is None else eval_args.seed
    seeds = list(range(args.seed, args.seed + args.num_seeds))
    # the training's own evaluation program on one device, with the keys the run's evaluation at this
    # checkpoint used (seed s: the eval half of key(seed + s) folded with the iterations done)
    par = Parallel(loop, args.num_seeds, jax.devices()[:1])
    keys = jnp.stack([jax.random.fold_in(jax.random.split(jax.random.key(seed + i))[1], iters)
                      for i in range(len(seeds))])
    on_device = jax.device_put(jax.tree.map(lambda x: x[None], state), par.sharded)
    steps = jax.device_put(jnp.full((1,), agent_steps, jnp.int32), par.sharded)
    result = jax.device_get(par.evaluate(on_device, keys, eval_args.episodes, steps))
    returns = np.asarray(result.returns, np.float64)  # [S, episodes]
    out = {"run_dir": eval_args.run_dir, "env_steps": step, "agent_steps": agent_steps, "task": env.name,
           "algo": args.algo, "episodes": eval_args.episodes, "seed": seed,
           "mean": float(returns.mean()), "std": float(returns.std()), "min": float(returns.min()),
           "max": float(returns.max()),
           "per_seed": {str(s): {"mean": float(r.mean()), "std": float(r.std()), "returns": r.tolist()}
                        for s, r in zip(seeds, returns)}}
    if eval_args.capture_video:
        out["videos"] = _videos(eval_args.run_dir, env, step, result)
    path = os.path.join(eval_args.run_dir, f"eval_{step}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
    os.replace(tmp, path)
    out["written"] = path
    return out


def _videos(run_dir: str, env, step: int, result) -> list[str]:
    """The first episode of the first seed, rendered to <run_dir>/videos/eval_<step>.mp4."""
    from anakin_tdmpc.session.video import VideoRecorder, choose_backend_here

    if env.render_model is None:
        print(f"warning: --capture_video: task {env.name} has no mj_model to render; no videos", file=sys.stderr)
        return []
    backend, why = choose_backend_here()
    if backend is None:
        print(f"warning: --capture_video: no OpenGL backend for MuJoCo works here ({why}); no videos",
              file=sys.stderr)
        return []
    recorder = VideoRecorder(env.render_model, 1.0 / env.control_dt, lambda m: print(m, file=sys.stderr))
    try:
        path = recorder.record(os.path.join(run_dir, "videos", f"eval_{step}.mp4"), *result.first_episode_frames())
    finally:
        recorder.close()
    return [path] if path else []


def main(argv=None) -> None:
    from anakin_tdmpc.cli import ConfigError, parse_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        eval_args = parse_flags(EvalArgs, argv, "python -m anakin_tdmpc.evaluate",
                                {"checkpoint": "int", "episodes": "int", "seed": "int"})
        out = evaluate(eval_args)
    except (ConfigError, EvalError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    per_seed = out["per_seed"]
    print(f"{out['algo']} on {out['task']}, checkpoint {out['env_steps']:,} env steps, {out['episodes']} episodes"
          f" x {len(per_seed)} seed(s): return {out['mean']:.1f} ± {out['std']:.1f} (min {out['min']:.1f}, "
          f"max {out['max']:.1f})")
    if len(per_seed) > 1:
        for s, r in per_seed.items():
            print(f"  seed {s}: {r['mean']:.1f} ± {r['std']:.1f}")
    for video in out.get("videos", []):
        print(f"video: {video}")
    print(f"wrote {out['written']}")


if __name__ == "__main__":
    main()
