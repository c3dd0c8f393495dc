"""Run by tests/test_parallel.py in a fresh interpreter (XLA_FLAGS must be set before JAX starts):

    python tests/parallel_worker.py devices      # with --xla_force_host_platform_device_count=2
    python tests/parallel_worker.py seeds

prints one JSON object with what the test checks."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

import point_task
from anakin_tdmpc import envs
from anakin_tdmpc.session import checkpoint
from anakin_tdmpc.config import Args
from anakin_tdmpc.loop.parallel import Parallel
from anakin_tdmpc.build import build

# the data-parallel and vmapped-seed machinery does not depend on the physics: the point task of
# tests/point_task.py compiles in seconds where an MJX task takes a minute per program
envs.register("point", point_task.make_env)
# a tiny run: 8 envs, batch 16; seeding ends at iteration 10 (80 agent steps)
TINY = dict(task="point", num_envs=8, model_size=1, latent_dim=16, mlp_dim=32, enc_dim=32, num_q=2,
            num_samples=16, num_elites=4, num_pi_trajs=2, iterations=2, batch_size=16, seed_steps=80,
            episode_length=40, buffer_size=4000, total_timesteps=4000, eval_episodes=4)
ITERS = (10, 30, 30)  # chunks: seeding + pretraining burst, then 2 chunks of 8 updates per iteration


def make(num_devices: int, num_seeds: int = 1) -> Parallel:
    _, _, loop, _ = build(Args(**TINY), num_devices)
    return Parallel(loop, num_seeds, jax.devices()[:num_devices])


def train(par: Parallel, seed: int = 1, iters=ITERS, evaluate: bool = True):
    k_init, k_eval = par.seed_keys(seed)
    carry, losses, equal = par.init(k_init), [], []
    first = jax.device_get(carry)
    for n in iters:
        carry, _, report = par.chunk(carry, jnp.int32(n))
        report = jax.device_get(report)
        losses.append((report.stats.update_sums["total_loss"] / np.maximum(report.stats.num_updates, 1)).tolist())
        equal.append(bool(report.replicas_equal))
    returns = jax.device_get(par.evaluate(carry.agent, k_eval, 4, carry.agent_steps).returns) if evaluate else None
    return par, carry, losses, equal, returns, first


def devices() -> dict:
    assert jax.device_count() == 2
    one = train(make(1))
    two = train(make(2))
    par, carry = two[0], two[1]
    agent = jax.tree.leaves(carry.agent)
    identical = all(np.array_equal(np.asarray(x.addressable_shards[0].data), np.asarray(x.addressable_shards[1].data))
                    for x in agent)
    # a checkpoint's layout (one agent copy + every shard) placed back on the mesh is the same carry
    saved = par.saved_view(carry)
    host = jax.tree.unflatten(jax.tree.structure(saved), checkpoint.to_host(saved))
    keys = [i for i, x in enumerate(jax.tree.leaves(saved)) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)]
    placed = jax.tree.leaves(par.place(host))
    round_trip = all(
        np.array_equal(np.asarray(jax.random.key_data(a) if i in keys else a), np.asarray(b))
        for i, (a, b) in enumerate(zip(jax.tree.leaves(carry), placed)))
    errors = []
    for bad in (dict(num_envs=3), dict(batch_size=15)):
        try:
            build(Args(**{**TINY, **bad}), 2)
        except ValueError as e:
            errors.append(str(e))
    return {"losses_1": one[2], "losses_2": two[2], "equal_2": two[3], "identical": identical,
            "returns_1": one[4].tolist(), "returns_2": two[4].tolist(), "round_trip": round_trip,
            "shards": [s.data.shape[2] for s in carry.plan_mean.addressable_shards],
            "buffer_rows": int(carry.buffer.obs.shape[2]), "errors": errors}


def seeds() -> dict:
    # short chunks after the pretraining burst: see the test for why. (No evaluation: the 2-seed CLI run of
    # tests/test_seeds.py evaluates vmapped seeds; each evaluation program here would compile twice more.)
    together = train(make(1, num_seeds=3), seed=4, iters=(10, 4, 4), evaluate=False)
    single = make(1)  # one compiled program for the three single runs
    alone = [train(single, seed=s, iters=(10, 4, 4), evaluate=False) for s in (4, 5, 6)]
    keys = lambda tree: [jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x  # noqa: E731
                         for x in jax.tree.leaves(tree)]
    def same(a, b):  # NaN == NaN (returns before an env's first episode)
        a, b = np.asarray(a), np.asarray(b)
        return np.array_equal(a, b, equal_nan=bool(np.issubdtype(a.dtype, np.floating)))

    init_equal = all(same(a[:, s], b[:, 0]) if np.ndim(a) >= 2 and a.shape[1] == 3 else same(a, b)
                     for s, r in enumerate(alone) for a, b in zip(keys(together[5]), keys(r[5])))
    params = [np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(r[1].agent))]) for r in alone]
    stacked = np.concatenate([np.reshape(x, (3, -1)) for x in jax.tree.leaves(jax.device_get(together[1].agent))],
                             axis=1)
    return {"init_equal": init_equal, "losses_together": together[2], "losses_alone": [r[2] for r in alone],
            "param_rel_diff": [float(np.linalg.norm(stacked[s] - params[s]) / np.linalg.norm(params[s]))
                               for s in range(3)],
            "seed_rel_diff": float(np.linalg.norm(params[0] - params[1]) / np.linalg.norm(params[1]))}


if __name__ == "__main__":
    print(json.dumps({"devices": devices, "seeds": seeds}[sys.argv[1]]()))
