"""Scaling the fused loop out: data-parallel devices, several processes (`jax.distributed`), vmapped seeds.

    global carry leaf     [D, S, ...]   D devices (every process's), S seeds; `agent_steps` is [D]
    one device            `jax.shard_map` over the mesh axis "devices" sees its own [S, ...] slice
    one seed              `jax.vmap` over S (skipped when S = 1) of `fused.FusedLoop.run_chunk` / `.pretrain`

Devices (D > 1). `build.build` gives every device the same `FusedLoop` for its share of the run: N/D envs, a
buffer of capacity/D, batches of B/D sequences, while the step counts (seeding, utd x N updates per
iteration, the algorithm's schedules) stay the run's global ones. Each device samples its batch from its
own buffer shard and plans for its own envs; the algorithm averages gradients (and TD-MPC2's Q-scale
statistic) with `pmean` over the "devices" axis (the `axis_name` it is built with), so every device applies the same
optimiser step and the parameters stay bitwise identical. Every chunk checks that exactly (max == min of
every agent leaf across devices) and reports it in `Report.replicas_equal`.

Seeds (S > 1): S independent agents with seeds seed, seed+1, ..., seed+S-1 in one program; seed s is the
run `--seed seed+s` would be (up to float rounding of the batched matmuls). The agent-step counter is
shared by the seeds (they step in lockstep), so the seeding `cond` and the update count stay scalars
under vmap instead of turning into both-branches selects.

Processes: the mesh spans every process's devices; each process holds its own devices' shards and all
processes run the same host loop in lockstep. What the host reads (chunk statistics, evaluation returns,
the agent for a checkpoint) leaves the device program reduced or replicated, so any process can read it;
buffer shards are gathered for checkpoints with `multihost_utils.process_allgather`.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from anakin_tdmpc.errors import ParallelError
from anakin_tdmpc.loop import fused
from anakin_tdmpc.loop.episodes import EvalResult, EvalState, eval_finish, eval_start, eval_steps

AXIS = "devices"
# vmap axes of one device's carry over seeds: every leaf has a seed axis but the shared agent-step counter
SEED_AXES = fused.Carry(agent=0, buffer=0, env_state=0, plan_mean=0, rng=0, agent_steps=None, last_return=0)


class Report(NamedTuple):
    """What the host reads after a chunk (replicated on every device, readable by every process)."""

    stats: fused.ChunkStats  # per seed ([S] leaves): return / episode sums over all devices, metric means
    finite: jax.Array  # [S, L] bool: floating agent-state leaf l of seed s is finite on every device
    replicas_equal: jax.Array  # bool: every agent-state leaf bitwise identical on every device


def _float_leaves(agent_state) -> list:
    return [x for x in jax.tree_util.tree_leaves(agent_state) if jnp.issubdtype(x.dtype, jnp.inexact)]


def float_leaf_names(agent_state) -> list[str]:
    """Names of the agent state's leaves `Report.finite` covers, in its order (paths in the carry)."""
    return ["agent" + jax.tree_util.keystr(path) for path, x in jax.tree_util.tree_flatten_with_path(agent_state)[0]
            if jnp.issubdtype(x.dtype, jnp.inexact)]


class Parallel:
    """`init / chunk / evaluate` of a run over D devices x S seeds, around the per-device `loop`."""

    def __init__(self, loop: fused.FusedLoop, num_seeds: int = 1, devices: Optional[list] = None):
        self.loop, self.num_seeds = loop, num_seeds
        self.devices = list(jax.devices() if devices is None else devices)
        self.num_devices = len(self.devices)
        self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
        self.sharded = NamedSharding(self.mesh, P(AXIS))
        self.replicated = NamedSharding(self.mesh, P())
        self.init = loop.env.jit(self._init)
        self.chunk = loop.env.jit(self._chunk, donate_argnums=0)
        self.pretrain = loop.env.jit(self._pretrain, donate_argnums=0)
        self.zero_stats = loop.env.jit(self._zero_stats)
        self.evaluate = loop.env.jit(self._evaluate, static_argnums=2)
        self.eval_start = loop.env.jit(self._eval_start, static_argnums=1)
        self.eval_steps = loop.env.jit(self._eval_steps, donate_argnums=1)
        self.eval_finish = loop.env.jit(self._eval_finish, static_argnums=1)
        self.agent_copy = jax.jit(lambda agent_state: jax.tree.map(lambda x: x[0], agent_state),
                                 out_shardings=self.replicated)

    def _on_devices(self, fn, in_specs, out_specs):
        # check_vma=False: MJX's internals do not type-check under shard_map's varying-axes analysis
        return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    def _over_seeds(self, fn, in_axes, out_axes):
        """vmap over seeds; with one seed, drop the axis, call, and put it back (no batched ops at all)."""
        if self.num_seeds > 1:
            return jax.vmap(fn, in_axes=in_axes, out_axes=out_axes)

        def along(axes, tree, fn):  # fn on every leaf under an int in `axes` (a prefix of `tree`)
            return jax.tree.map(lambda a, sub: sub if a is None else jax.tree.map(fn, sub), axes, tree,
                                is_leaf=lambda a: a is None)

        def one(*args):
            out = fn(*along(in_axes, args, lambda x: x[0]))
            return along(out_axes, out, lambda x: x[None])

        return one

    # ------------------------------------------------------------------------------------------------ init

    def seed_keys(self, seed: int) -> jax.Array:
        """[S] keys of seeds seed .. seed+S-1, each split like a single run's: (init key, eval key)."""
        keys = jnp.stack([jax.random.key(seed + s) for s in range(self.num_seeds)])
        pair = jax.vmap(lambda k: jax.random.split(k))(keys)
        return pair[:, 0], pair[:, 1]

    def _init(self, keys: jax.Array) -> fused.Carry:
        loop = self.loop

        def per_device(keys):
            shard = jax.lax.axis_index(AXIS)
            carry = self._over_seeds(lambda k: loop.init_carry(k, shard), (0,), SEED_AXES)(keys)
            return jax.tree.map(lambda x: x[None], carry)

        return self._on_devices(per_device, P(), P(AXIS))(keys)

    # ------------------------------------------------------------------------------------------- training

    def _chunk(self, carry: fused.Carry, num_iters, stats: Optional[fused.ChunkStats] = None, burst=True):
        """`num_iters` iterations of every device and seed -> (carry, stats, Report). `stats` ([D, S] leaves,
        default zeros) are the sums of the log period so far, which the chunk continues; `burst`: see
        `FusedLoop.run_chunk`."""
        stats = self._zero_stats(carry) if stats is None else stats
        return self._on_every_seed(lambda c, s, n, b: self.loop.run_chunk(c, n, s, b), carry, stats, num_iters, burst)

    def _pretrain(self, carry: fused.Carry, stats: fused.ChunkStats, start, count):
        """Pretraining updates start .. start+count-1 on every device and seed (`FusedLoop.pretrain`) ->
        (carry, stats, Report)."""
        return self._on_every_seed(self.loop.pretrain, carry, stats, start, count)

    def _on_every_seed(self, step, carry: fused.Carry, stats: fused.ChunkStats, *scalars):
        """`step(carry, stats, *scalars)` of one seed's loop, on every device and seed -> (carry, stats, Report)."""

        def per_device(carry, stats, *scalars):
            carry, stats = jax.tree.map(lambda x: x[0], (carry, stats))
            run = self._over_seeds(lambda c, s: step(c, s, *scalars), (SEED_AXES, 0), (SEED_AXES, 0))
            return self._outputs(*run(carry, stats))

        specs = (P(AXIS), P(AXIS)) + (P(),) * len(scalars)
        return self._on_devices(per_device, specs, (P(AXIS), P(AXIS), P()))(carry, stats, *scalars)

    def _zero_stats(self, carry: fused.Carry) -> fused.ChunkStats:
        """[D, S] zero sums: where a log period's chunks start."""

        def per_device(carry):
            zeros = self._over_seeds(self.loop.zero_stats, (SEED_AXES,), 0)(jax.tree.map(lambda x: x[0], carry))
            return jax.tree.map(lambda x: x[None], zeros)

        return self._on_devices(per_device, P(AXIS), P(AXIS))(carry)

    def _outputs(self, carry: fused.Carry, stats: fused.ChunkStats):
        """One device's (carry, stats) -> what it returns: both with their device axis back, and the Report."""
        D = self.num_devices
        totals = fused.ChunkStats(
            update_sums=jax.lax.pmean(stats.update_sums, AXIS),  # each device's batch: the mean is the global batch's
            num_updates=stats.num_updates,  # the same on every device
            return_sum=jax.lax.psum(stats.return_sum, AXIS),
            episodes=jax.lax.psum(stats.episodes, AXIS),
            burst_key=jnp.zeros_like(stats.burst_key),  # each device's own: kept in `stats`, not reported
        )
        leaves = _float_leaves(carry.agent)
        finite = jnp.stack([jnp.all(jnp.isfinite(x).reshape(x.shape[0], -1), axis=1) for x in leaves], axis=-1)
        finite = jax.lax.pmin(finite.astype(jnp.int32), AXIS) > 0
        equal = jnp.bool_(True)
        if D > 1:  # NaN != NaN: a non-finite leaf also reads unequal, but `finite` names it first
            equal = jnp.all(jnp.stack([jnp.all(jax.lax.pmax(x, AXIS) == jax.lax.pmin(x, AXIS)) for x in leaves]))
        carry, stats = jax.tree.map(lambda x: x[None], (carry, stats))
        return carry, stats, Report(totals, finite, equal)

    # ----------------------------------------------------------------------------------------- evaluation

    def _evaluate(self, agent_state, keys: jax.Array, num_episodes: int, agent_steps) -> EvalResult:
        """`num_episodes` eval episodes per seed, split over the devices: returns [S, num_episodes]; the
        positions are those of episode 0 of seed 0 (for a video). `keys` [S], one per seed. The same as
        `eval_start`, `eval_steps` (in pieces of any length, to the episode length) and `eval_finish`."""
        started = self._eval_start(keys, num_episodes)
        return self._eval_finish(self._eval_steps(agent_state, started, self.loop.env.episode_length, agent_steps),
                                 num_episodes)

    def _eval_start(self, keys: jax.Array, num_episodes: int) -> EvalState:
        """New eval episodes, ceil(num_episodes / D) on each device, for every seed: [D, S, ...] leaves."""
        loop, per = self.loop, math.ceil(num_episodes / self.num_devices)

        def per_device(keys):
            shard = jax.lax.axis_index(AXIS)
            started = self._over_seeds(lambda k: eval_start(loop.agent, loop.env, jax.random.fold_in(k, shard), per,
                                                            frames=loop.env.render_model is not None), (0,), 0)(keys)
            return jax.tree.map(lambda x: x[None], started)

        return self._on_devices(per_device, P(), P(AXIS))(keys)

    def _eval_steps(self, agent_state, episodes_state: EvalState, num_steps, agent_steps) -> EvalState:
        """`num_steps` (traced) more agent steps of every device's and seed's eval episodes."""
        loop = self.loop

        def per_device(agent_state, episodes_state, num_steps, agent_steps):
            agent_state, episodes_state = jax.tree.map(lambda x: x[0], (agent_state, episodes_state))
            advanced = self._over_seeds(
                lambda s, e: eval_steps(loop.agent, loop.env, s, e, num_steps, agent_steps[0]), (0, 0), 0)(
                agent_state, episodes_state)
            return jax.tree.map(lambda x: x[None], advanced)

        return self._on_devices(per_device, (P(AXIS), P(AXIS), P(), P(AXIS)), P(AXIS))(
            agent_state, episodes_state, num_steps, agent_steps)

    def _eval_finish(self, episodes_state: EvalState, num_episodes: int) -> EvalResult:
        """The returns [S, num_episodes] gathered from the devices, and episode 0 of seed 0's positions."""

        def per_device(episodes_state):
            out = self._over_seeds(eval_finish, (0,), 0)(jax.tree.map(lambda x: x[0], episodes_state))
            returns, lengths = (jax.lax.all_gather(x, AXIS, axis=1, tiled=True)[:, :num_episodes]
                                for x in (out.returns, out.lengths))
            first = jax.tree.map(lambda x: jax.lax.all_gather(x[0], AXIS)[0], (out.qpos, out.mocap_pos, out.mocap_quat))
            return EvalResult(returns, lengths, *first)

        return self._on_devices(per_device, P(AXIS), P())(episodes_state)

    # -------------------------------------------------------------------------------- checkpoints / memory

    def saved_view(self, carry: fused.Carry) -> fused.Carry:
        """What a checkpoint stores: one copy of the agent state ([S, ...], replicated) and every shard of the rest."""
        if isinstance(jax.tree_util.tree_leaves(carry.agent)[0], jax.ShapeDtypeStruct):
            return carry._replace(agent=jax.eval_shape(self.agent_copy, carry.agent))
        return carry._replace(agent=self.agent_copy(carry.agent))

    def place(self, saved: fused.Carry) -> fused.Carry:
        """Host arrays in `saved_view` layout -> the global carry on the mesh (the agent state copied to every
        device)."""

        def put(x, copies: bool):
            x = np.asarray(x)
            return self.place_sharded(np.broadcast_to(x[None], (self.num_devices,) + x.shape) if copies else x)

        return fused.Carry(*(jax.tree.map(lambda x, c=(name == "agent"): put(x, c), v)
                              for name, v in zip(fused.Carry._fields, saved)))

    def place_sharded(self, x: np.ndarray) -> jax.Array:
        """A host array [D, ...] -> a global array with row d on device d."""
        return jax.make_array_from_callback(x.shape, self.sharded, lambda index: x[index])

    def state_bytes_per_device(self, keys: jax.Array) -> int:
        """Bytes of the training state (agent copy, buffer shard, env states, ...) on each device."""
        shapes = jax.eval_shape(self._init, keys)
        total = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes)
                    if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key))
        return total // self.num_devices


def device_memory_bytes(device) -> Optional[int]:
    """Memory one device can use: the accelerator's limit, or on CPU the machine's RAM shared by the
    process's CPU devices. None when unknown."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if device.platform == "cpu":
        try:
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
        return ram // max(1, jax.local_device_count())
    return None


def select_devices(num_devices: Optional[int]) -> list:
    """The devices of a run: all of them by default, else the first `num_devices` of this process's."""
    available = jax.devices()
    if num_devices is None:
        return available
    if num_devices < 1:
        raise ParallelError(f"--num_devices must be positive, got {num_devices}")
    if jax.process_count() > 1 and num_devices != len(available):
        raise ParallelError(f"with {jax.process_count()} processes --num_devices must be every device of the run "
                            f"({len(available)}), got {num_devices}")
    if num_devices > len(available):
        kind = available[0].platform
        hint = (" (on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices)"
                if kind == "cpu" else "")
        raise ParallelError(f"--num_devices {num_devices} asks for more devices than the {len(available)} "
                            f"{kind} device(s) present{hint}")
    return available[:num_devices]


def initialize_distributed(coordinator_address: Optional[str], num_processes: Optional[int],
                           process_id: Optional[int]) -> bool:
    """Join a multi-process run through `jax.distributed.initialize` when asked (flags, or the environment
    variables JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID). Must run before any other JAX
    call. Returns whether this is a multi-process run."""
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None

    def number(value, variable):
        if value is not None:
            return value
        text = os.environ.get(variable)
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise ParallelError(f"{variable} must be an integer, got {text!r}") from None

    n, i = number(num_processes, "JAX_NUM_PROCESSES"), number(process_id, "JAX_PROCESS_ID")
    if address is None and n is None and i is None:
        return False
    if address is None or n is None or i is None:
        raise ParallelError("a multi-process run needs all of --coordinator_address, --num_processes and "
                            "--process_id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    if n < 1 or not 0 <= i < n:
        raise ParallelError(f"--process_id must be in [0, --num_processes), got {i} of {n}")
    if ":" not in address:
        raise ParallelError(f"--coordinator_address must be host:port, got {address!r}")
    if n == 1:
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices of several processes
    jax.distributed.initialize(coordinator_address=address, num_processes=n, process_id=i)
    return True
