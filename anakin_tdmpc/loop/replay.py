"""On-device replay buffer for N parallel environments, written in pure JAX.

Layout
------
Every iteration of the fused training loop inserts one transition row per environment: the observation
the action was taken at (``obs_t``), the action ``action_t``, the reward ``reward_t`` and
``episode_step_t``, the agent-step index of ``obs_t`` within its episode (0 for the first observation after
a reset).  An environment whose episode ended at this step (time limit or termination) also gets a *final
row*: the observation the episode ended in, with ``episode_step`` one more than the transition's, a zero
action and reward (never trained on: a window ends at it, or masks it, below), and ``terminal`` set if the
episode *terminated* there (the env reached a terminal state, as opposed to a time limit).  So every
transition of every episode is stored, the last one included, and the next row of that environment is the
first observation of the next episode (``episode_step == 0``).  (An episode ended by diverged physics gets
no final row: its last observation is not a state of the task.)

Storage is time-major, ``[T, N, ...]``, with ``T = max(ceil(capacity / N), seq_len)`` rows per environment.
Each environment has its own write pointer, as final rows make some environments write two rows in one
iteration; each environment's rows form a ring: once it has written ``T`` rows, its oldest row is
overwritten.

Sampling
--------
A training sample is a window of ``L = H + 1`` consecutive rows of one environment: observations of rows
``r .. r+H``, actions / rewards of rows ``r .. r+H-1`` and the terminal flags of rows ``r+1 .. r+H`` (the
flag of each transition's next observation), row indices modulo ``T``.  For environment ``e`` let
``oldest_e = (pointer_e - size_e) % T`` and number its rows logically by their offset
``o = (row - oldest_e) % T`` (0 is its oldest row, ``size_e - 1`` its newest).  A start ``(e, o)`` is
*valid* iff

(a) the window lies in written data without crossing the write pointer: ``0 <= o <= size_e - L``; and
(b) it does not cross an episode reset: ``episode_step[r + H] == episode_step[r] + H``.  Because
    ``episode_step`` grows by exactly one per row inside an episode (its final row included) and restarts
    at 0, any reset inside the window would make the right-hand side strictly larger.  A window may end
    at a final row (a terminal step) and never continues past one.

In an episodic task (``past_end=True``, a static argument of the sampling functions and ``add``) condition
(b) is relaxed to its first step, (b') ``episode_step[r + 1] == episode_step[r] + 1``: a window may start at
any stored transition and run past its episode's final row.  Its steps after that final row are then
*masked*: ``Batch.mask[t]`` is 1 iff row ``r + t + 1`` lies in the episode of row ``r`` (same test,
``episode_step[r + t + 1] == episode_step[r] + t + 1``), the losses weight each step by it, and
``terminated`` keeps only the flag of the episode's own final row.  Without this, the last ``H - 1``
observations before every termination never start a window, so no loss ever trains the value at exactly
the states whose TD targets bootstrap from it: their Q is extrapolated and the termination never reaches
it.  DMC tasks (``past_end=False``) keep the official buffer's rule: whole windows inside one episode.

``sample`` draws, for each batch entry, ``K`` candidate ``(env, o)`` pairs uniformly from
``N x [0, max_e size_e - L]`` and keeps the first one satisfying (a) and (b).  This is rejection sampling
truncated at ``K`` proposals, so conditioned on at least one accepted proposal the start is exactly uniform
over all valid ``(env, start)`` pairs.

If all ``K`` proposals are rejected (probability ``(1 - p) ** K`` per entry, where ``p`` is the valid
fraction of proposals; with 1000-step episodes and ``H = 3``, ``p ~= 0.997`` and the default ``K = 8``
gives ~1e-20) the first proposal is deterministically moved *forward* to the next valid start in
row-major, cyclic physical order ``(row, env)``: a later env of the same row, else the first valid env of
the next row that has one.  That fix-up is always valid whenever the buffer holds at least one valid
window.  Its bias: the fallback mass lands on valid starts that follow a run of invalid starts, in
proportion to the length of that run, so the total-variation distance between the sampled distribution
and the uniform distribution over valid starts is at most ``(1 - p) ** K``.  (Episodes of a few steps, as
in some terminating tasks, lower ``p``; the bound says by how much that matters.)

The fix-up needs the validity mask of every ``(row, env)``, an ``O(T * N)`` elementwise pass followed by
a scan-free two-level (block) search over rows.  It runs under ``lax.cond`` only when some entry needs it;
note that under an outer ``jax.vmap`` the ``cond`` becomes a ``select`` and the pass runs on every call
(one read of ``episode_step``: cheap on an accelerator next to a network update, about 1 ms per buffer of
1M transitions on a 2-core CPU).

Prioritized replay (TD-MPC)
---------------------------
A buffer made with ``init(..., prioritized=True)`` also keeps a priority per
``(row, env)`` window start, ``priority: [T, N]``, and ``max_priority``, the
priority the newest row entered at.  ``add`` writes a new row at the largest
priority among the starts that can be sampled *now* (valid windows, above;
1.0 while there are none), as the official TD-MPC buffer gives new data the
maximum of its current priorities, in which starts that cannot begin a window
hold 0: so a priority spike that has been trained away, or rows that can never
be sampled, do not lift the priority of new data.  ``update_priorities`` writes
the priorities an update computed for the starts it trained on (plus
``PRIORITY_EPS``).  ``sample_prioritized`` draws
starts with probability ``P(i) = p_i^alpha / sum_j p_j^alpha`` over the
*valid* starts only (same validity as above: inside written data, not
crossing the pointer or an episode reset; (b') with ``past_end``), exactly, by inverse-CDF sampling on
a two-level (block) cumulative sum of the masked ``p^alpha`` (``O(T * N)`` per
call, float32 prefix sums kept short for accuracy), and returns importance
weights ``w_i = (N_valid * P(i))^-beta / max_batch w``.  This follows the
official TD-MPC buffer, whose windows never cross an episode end because their
starts get priority 0 (here: the validity mask).  A uniform buffer holds empty
``priority`` ([0, N]) and ``max_priority`` ([0]) arrays and costs nothing extra.

All functions are pure, fixed-shape and work inside ``jit``, ``lax.scan`` and
an outer ``jax.vmap`` (e.g. over seeds).

(About 500 lines, a fifth of them this explanation: the sampling rules above and the code that keeps
them belong in one place.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

DEFAULT_NUM_CANDIDATES = 8
"""Default number of rejection-sampling proposals per batch entry."""

PRIORITY_EPS = 1e-6
"""Added to every priority written by ``update_priorities`` (as the official TD-MPC buffer)."""

class BufferState(NamedTuple):
    """Ring-buffer storage, time-major per environment (``T`` rows, ``N`` envs)."""

    obs: jax.Array  # [T, N, obs_dim] float32
    action: jax.Array  # [T, N, action_dim] float32
    reward: jax.Array  # [T, N] float32
    episode_step: jax.Array  # [T, N] int32 (-1 where never written)
    terminal: jax.Array  # [T, N] bool: the row is the final row of an episode that terminated there
    pointer: jax.Array  # [N] int32, each env's next row to write
    size: jax.Array  # [N] int32, rows each env has written so far, capped at T
    priority: jax.Array  # [T, N] float32 priority of each window start ([0, N] in a uniform buffer)
    max_priority: jax.Array  # float32 scalar, priority the newest row entered at ([0] in a uniform buffer)


class Batch(NamedTuple):
    """A batch of ``B`` sub-trajectories, time-major like the official TD-MPC2 buffer."""

    obs: jax.Array  # [H+1, B, obs_dim]
    action: jax.Array  # [H, B, action_dim]
    reward: jax.Array  # [H, B]
    env: jax.Array = None  # [B] int32 env of each window (None in hand-made batches)
    row: jax.Array = None  # [B] int32 physical start row of each window
    weight: jax.Array = None  # [B] float32 importance weight (ones when sampled uniformly; None = ones)
    terminated: jax.Array = None  # [H, B] float32: 1 where transition t's next observation is terminal (None = 0)
    mask: jax.Array = None  # [H, B] float32: 1 where transition t lies in the window's episode (None = all do)


# ---------------------------------------------------------------------------
# Sizing helpers (plain Python).
# ---------------------------------------------------------------------------


def rows_for(capacity: int, num_envs: int, seq_len: int) -> int:
    """Number of ring rows ``T = max(ceil(capacity / num_envs), seq_len)``.

    ``capacity`` counts transitions summed over all environments.
    """
    if capacity < 1 or num_envs < 1 or seq_len < 1:
        raise ValueError(
            f"capacity, num_envs and seq_len must be >= 1, got "
            f"capacity={capacity}, num_envs={num_envs}, seq_len={seq_len}"
        )
    return max(math.ceil(capacity / num_envs), seq_len)


def memory_bytes(
    capacity: int, num_envs: int, obs_dim: int, action_dim: int, seq_len: int, prioritized: bool = False
) -> int:
    """Bytes held by one ``BufferState`` (storage arrays plus the two int32 scalars).

    Per stored row and env: ``obs_dim + action_dim`` float32 values, one float32
    reward, one int32 episode step and a one-byte terminal flag, plus a float32 priority (and the float32
    ``max_priority`` scalar) when ``prioritized``; per env an int32 pointer and size.  Transient memory of ``sample``
    (at most an int32 per ``(row, env)`` in the fallback path; a float32 per
    ``(row, env)`` in ``sample_prioritized``) is not included.
    """
    rows = rows_for(capacity, num_envs, seq_len)
    per_row_env = 4 * (obs_dim + action_dim) + 4 + 4 + 1 + (4 if prioritized else 0)
    return rows * num_envs * per_row_env + 2 * 4 * num_envs + (4 if prioritized else 0)


# ---------------------------------------------------------------------------
# Construction and insertion.
# ---------------------------------------------------------------------------


def init(
    capacity: int, num_envs: int, obs_dim: int, action_dim: int, seq_len: int, prioritized: bool = False
) -> BufferState:
    """Create an empty buffer of ``rows_for(capacity, num_envs, seq_len)`` rows.

    With ``prioritized``, priorities start at 1.0 (the ``max_priority`` of an empty buffer).
    """
    rows = rows_for(capacity, num_envs, seq_len)
    priority_rows = rows if prioritized else 0
    return BufferState(
        obs=jnp.zeros((rows, num_envs, obs_dim), jnp.float32),
        action=jnp.zeros((rows, num_envs, action_dim), jnp.float32),
        reward=jnp.zeros((rows, num_envs), jnp.float32),
        episode_step=jnp.full((rows, num_envs), -1, jnp.int32),
        terminal=jnp.zeros((rows, num_envs), bool),
        pointer=jnp.zeros((num_envs,), jnp.int32),
        size=jnp.zeros((num_envs,), jnp.int32),
        priority=jnp.ones((priority_rows, num_envs), jnp.float32),
        max_priority=jnp.ones(() if prioritized else (0,), jnp.float32),
    )


def is_prioritized(state: BufferState) -> bool:
    """Whether ``state`` keeps priorities (static: read from array shapes)."""
    return state.priority.shape[0] > 0


def add(
    state: BufferState,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    episode_step: jax.Array,
    seq_len: int | None = None,
    final_obs: jax.Array | None = None,
    final: jax.Array | None = None,
    terminated: jax.Array | None = None,
    past_end: bool = False,
) -> BufferState:
    """Write one transition row per env at its pointer, and a final row after it where an episode ended.

    Args:
      state: current buffer.
      obs: ``[N, obs_dim]`` observation the action was taken at.
      action: ``[N, action_dim]`` action taken.
      reward: ``[N]`` reward received.
      episode_step: ``[N]`` int32 step index of ``obs`` within its episode.
      seq_len: window length the buffer is sampled with; needed by a prioritized buffer only.
      final_obs: ``[N, obs_dim]`` observation this step reached (read where ``final``).
      final: ``[N]`` bool, the episode ended at this step and ``final_obs`` is its last observation: a
        final row ``(final_obs, zero action, zero reward, episode_step + 1, terminated)`` follows the
        transition.  ``None``: no env writes one.
      terminated: ``[N]`` bool, the episode ended in a terminal state (read where ``final``).
      past_end: the buffer is sampled with windows that may run past an episode's end (episodic tasks;
        read by a prioritized buffer only, for which starts are valid).

    Both writes are scatters of one row per env (``O(N)`` work), performed in place when ``state`` is
    donated to the enclosing jit (or carried through a ``lax.scan``).  A prioritized buffer gives the new
    rows the largest priority of the window starts valid before the write (1.0 if there are none; see the
    module docstring) and keeps it as ``max_priority``.
    """
    num_rows, num_envs = state.episode_step.shape
    envs = jnp.arange(num_envs, dtype=jnp.int32)
    row = state.pointer
    prioritized = is_prioritized(state)
    if prioritized:
        if seq_len is None:
            raise ValueError("add needs seq_len for a prioritized buffer")
        valid = valid_start_mask(state, seq_len, past_end)
        entry = jnp.where(jnp.any(valid), jnp.max(jnp.where(valid, state.priority, 0.0)), 1.0)
    else:
        entry = state.max_priority
    if final is None:
        final = jnp.zeros((num_envs,), bool)
        final_obs, terminated = obs, final
    final = jnp.asarray(final, bool)
    # a final row goes to the next row of its env; other envs' second write is dropped (index T is out of range)
    final_row = jnp.where(final, (row + 1) % num_rows, num_rows)

    def write(buf: jax.Array, value: jax.Array, final_value: jax.Array) -> jax.Array:
        buf = buf.at[row, envs].set(jnp.asarray(value, buf.dtype))
        return buf.at[final_row, envs].set(jnp.asarray(final_value, buf.dtype), mode="drop")

    step = jnp.asarray(episode_step, jnp.int32)
    written = 1 + final.astype(jnp.int32)
    priority = state.priority
    if prioritized:
        entries = jnp.broadcast_to(entry, (num_envs,))
        priority = write(priority, entries, entries)
    return BufferState(
        obs=write(state.obs, obs, final_obs),
        action=write(state.action, action, jnp.zeros_like(action)),
        reward=write(state.reward, reward, jnp.zeros_like(reward)),
        episode_step=write(state.episode_step, step, step + 1),
        terminal=write(state.terminal, jnp.zeros((num_envs,), bool), jnp.asarray(terminated, bool) & final),
        pointer=(row + written) % num_rows,
        size=jnp.minimum(state.size + written, num_rows),
        priority=priority,
        max_priority=entry.astype(state.max_priority.dtype),
    )


# ---------------------------------------------------------------------------
# Validity.
# ---------------------------------------------------------------------------


def _oldest_row(state: BufferState) -> jax.Array:
    """``[N]`` physical row index of each env's oldest stored row."""
    num_rows = state.episode_step.shape[0]
    return (state.pointer - state.size) % num_rows


def _checked_steps(seq_len: int, past_end: bool) -> int:
    """How many rows past the start condition (b) checks: all ``H`` of the window, or its first (b')."""
    return min(seq_len - 1, 1) if past_end else seq_len - 1


def _within_one_episode(state: BufferState, env: jax.Array, row: jax.Array, seq_len: int,
                        past_end: bool = False) -> jax.Array:
    """Condition (b), or (b') with ``past_end``, for windows starting at physical ``row`` of ``env`` (any shape)."""
    num_rows = state.episode_step.shape[0]
    k = _checked_steps(seq_len, past_end)
    first = state.episode_step[row, env]
    last = state.episode_step[(row + k) % num_rows, env]
    return last == first + k


def valid_start_mask(state: BufferState, seq_len: int, past_end: bool = False) -> jax.Array:
    """Boolean ``[T, N]``: whether a window of ``seq_len`` rows may start at ``(row, env)``."""
    num_rows = state.episode_step.shape[0]
    k = _checked_steps(seq_len, past_end)
    rows = jnp.arange(num_rows, dtype=jnp.int32)
    offset = (rows[:, None] - _oldest_row(state)[None, :]) % num_rows  # [T, N] logical offset of each row
    in_range = offset <= state.size[None, :] - seq_len  # condition (a)
    steps = state.episode_step
    last = jnp.roll(steps, -k, axis=0)  # last[r] = steps[(r + k) % T]
    no_reset = last == steps + k  # condition (b) / (b')
    return in_range & no_reset


def num_valid_windows(state: BufferState, seq_len: int, past_end: bool = False) -> jax.Array:
    """Number of valid ``(env, start)`` pairs for windows of ``seq_len`` rows (int32)."""
    return jnp.sum(valid_start_mask(state, seq_len, past_end), dtype=jnp.int32)


# ---------------------------------------------------------------------------
# Sampling.
# ---------------------------------------------------------------------------


def _first_true_from(mask: jax.Array, start: jax.Array) -> tuple[jax.Array, jax.Array]:
    """First ``True`` index of a 1-D ``mask`` at or after each ``start``, cyclically.

    Returns ``(index, found)``; ``found`` is false (and ``index`` meaningless)
    when ``mask`` has no ``True`` at all.  Scan-free two-level search: ``mask``
    (``M`` entries) is cut into blocks of ``S ~ sqrt(M)``; a query looks at or
    after itself in its own block, else takes the first ``True`` of the nearest
    following block that has one (its own block last, covering the entries
    before it).  Work ``O(M + B * (S + M / S))`` for ``B`` queries.
    """
    size = mask.shape[0]
    block = 1 << max(0, math.ceil(math.log2(math.isqrt(max(size - 1, 0)) + 1)))
    num_blocks = -(-size // block)
    blocks = jnp.pad(mask, (0, num_blocks * block - size)).reshape(num_blocks, block)
    block_has_true = jnp.any(blocks, axis=1)

    start_block, start_pos = start // block, start % block
    positions = jnp.arange(block, dtype=jnp.int32)
    here = blocks[start_block] & (positions[None, :] >= start_pos[:, None])  # [B, S]
    at_here = start_block * block + jnp.argmax(here, axis=1).astype(jnp.int32)

    block_ids = jnp.arange(num_blocks, dtype=jnp.int32)
    distance = (block_ids[None, :] - start_block[:, None] - 1) % num_blocks  # [B, num_blocks]
    distance = jnp.where(block_has_true[None, :], distance, num_blocks)
    next_block = jnp.argmin(distance, axis=1).astype(jnp.int32)
    at_later = next_block * block + jnp.argmax(blocks[next_block], axis=1).astype(jnp.int32)

    found_here = jnp.any(here, axis=1)
    index = jnp.where(found_here, at_here, at_later)
    return index, found_here | jnp.any(block_has_true)


def _next_valid_start(state: BufferState, env: jax.Array, row: jax.Array, seq_len: int, past_end: bool = False):
    """Map each ``(env, row)`` to the next valid start in row-major cyclic order.

    The search order is physical: ``(row 0, env 0), (row 0, env 1), ...,
    (row T-1, env N-1)``, wrapping around; i.e. a later env of the same row,
    else the first valid env of the next row holding a valid start.  A valid
    ``(env, row)`` maps to itself.  If the buffer holds no valid window at all,
    the input is returned unchanged.  Work: one ``O(T * N)`` validity pass plus
    ``O(B * (N + sqrt(T)))`` per-query gathers; no scans, no transposes.
    """
    num_rows, num_envs = state.episode_step.shape
    valid = valid_start_mask(state, seq_len, past_end)  # [T, N]
    env_ids = jnp.arange(num_envs, dtype=jnp.int32)

    same_row = valid[row] & (env_ids[None, :] >= env[:, None])  # [B, N]
    found_same_row = jnp.any(same_row, axis=1)
    env_same_row = jnp.argmax(same_row, axis=1).astype(jnp.int32)

    next_row, found = _first_true_from(jnp.any(valid, axis=1), (row + 1) % num_rows)
    env_next_row = jnp.argmax(valid[next_row], axis=1).astype(jnp.int32)

    new_env = jnp.where(found_same_row, env_same_row, jnp.where(found, env_next_row, env))
    new_row = jnp.where(found_same_row, row, jnp.where(found, next_row, row))
    return new_env, new_row


def sample_starts(
    state: BufferState,
    rng: jax.Array,
    batch_size: int,
    seq_len: int,
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    past_end: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sample window starts uniformly over valid ``(env, start)`` pairs.

    Returns ``(env, row, used_fallback)``, each of shape ``[batch_size]``:
    ``row`` is the physical start row, ``used_fallback`` flags entries whose
    ``num_candidates`` proposals were all rejected and that were fixed up
    deterministically (see the module docstring for the bias).

    ``past_end`` relaxes the validity as in episodic tasks (module docstring).

    Precondition: ``num_valid_windows(state, seq_len, past_end) > 0``; otherwise
    the returned starts are arbitrary (there is no valid window to return).
    """
    num_rows, num_envs = state.episode_step.shape
    if not 1 <= seq_len <= num_rows:
        raise ValueError(f"seq_len must be in [1, {num_rows}], got {seq_len}")
    env_key, offset_key = jax.random.split(rng)
    shape = (batch_size, num_candidates)
    num_offsets = jnp.maximum(jnp.max(state.size) - seq_len + 1, 1)  # offsets 0 .. max size - L
    env = jax.random.randint(env_key, shape, 0, num_envs, dtype=jnp.int32)
    offset = jax.random.randint(offset_key, shape, 0, num_offsets, dtype=jnp.int32)
    row = (_oldest_row(state)[env] + offset) % num_rows

    in_range = offset <= state.size[env] - seq_len  # (a) for envs holding fewer rows than the largest
    ok = in_range & _within_one_episode(state, env, row, seq_len, past_end)  # [B, K]
    choice = jnp.argmax(ok, axis=1)  # first accepted proposal (0 if none)
    env = jnp.take_along_axis(env, choice[:, None], axis=1)[:, 0]
    row = jnp.take_along_axis(row, choice[:, None], axis=1)[:, 0]
    used_fallback = ~jnp.any(ok, axis=1)

    def fix_up(env_row):
        env_, row_ = env_row
        fixed_env, fixed_row = _next_valid_start(state, env_, row_, seq_len, past_end)
        return jnp.where(used_fallback, fixed_env, env_), jnp.where(used_fallback, fixed_row, row_)

    env, row = lax.cond(jnp.any(used_fallback), fix_up, lambda env_row: env_row, (env, row))
    return env, row, used_fallback


def gather(state: BufferState, env: jax.Array, row: jax.Array, seq_len: int, past_end: bool = False) -> Batch:
    """Gather the windows of ``seq_len`` rows starting at ``(env[b], row[b])``.

    With ``past_end`` the batch carries ``mask`` (the steps inside the start's episode) and ``terminated``
    keeps only that episode's terminal flag; without it ``mask`` is None (every window is whole).
    """
    num_rows = state.episode_step.shape[0]
    steps_after = jnp.arange(seq_len, dtype=jnp.int32)[:, None]  # [L, 1]
    rows = (row[None, :] + steps_after) % num_rows  # [L, B]
    envs = jnp.broadcast_to(env[None, :], rows.shape)
    terminated = state.terminal[rows[1:], envs[1:]].astype(jnp.float32)
    mask = None
    if past_end:
        steps = state.episode_step[rows, envs]  # [L, B]
        same_episode = steps[1:] == steps[0][None, :] + steps_after[1:]  # row r + t + 1 in the episode of row r
        mask = jnp.cumprod(same_episode.astype(jnp.float32), axis=0)
        terminated = terminated * mask
    return Batch(
        obs=state.obs[rows, envs],
        action=state.action[rows[:-1], envs[:-1]],
        reward=state.reward[rows[:-1], envs[:-1]],
        env=env.astype(jnp.int32),
        row=row.astype(jnp.int32),
        weight=jnp.ones(env.shape, jnp.float32),
        terminated=terminated,
        mask=mask,
    )


def sample(
    state: BufferState,
    rng: jax.Array,
    batch_size: int,
    seq_len: int,
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    past_end: bool = False,
) -> Batch:
    """Sample ``batch_size`` windows of ``seq_len = H + 1`` rows, time-major.

    ``batch_size``, ``seq_len`` and ``num_candidates`` must be static under
    ``jit``.  Every returned window is a valid window (one env, consecutive
    rows inside the written range, within one episode) provided the buffer
    holds at least one, i.e. ``num_valid_windows(state, seq_len) > 0``.  With ``past_end`` (episodic tasks) a
    window may run past its episode's end, and ``Batch.mask`` marks the steps inside it.
    """
    env, row, _ = sample_starts(state, rng, batch_size, seq_len, num_candidates, past_end)
    return gather(state, env, row, seq_len, past_end)


# ---------------------------------------------------------------------------
# Prioritized replay.
# ---------------------------------------------------------------------------


def _inverse_cdf(weights: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Draw indices of a 1-D non-negative ``weights`` [M] with probability ``weights / sum``.

    ``u`` [B] are uniforms in [0, 1).  Returns ``(index [B], total)``.  Two-level
    inverse CDF: ``weights`` is cut into blocks of ``S ~ sqrt(M)``; a query finds
    its block in the cumulative sum of block sums, then its entry in the
    cumulative sum of that block.  Both prefix sums have ``~sqrt(M)`` terms,
    which keeps float32 rounding far below the smallest probabilities of
    interest.  The returned entry always has positive weight when ``total > 0``
    (rounding at block or entry edges is clamped to the last positive entry).
    Work ``O(M + B * sqrt(M))``.
    """
    size = weights.shape[0]
    block = 1 << max(0, math.ceil(math.log2(max(math.isqrt(max(size - 1, 0)) + 1, 1))))
    num_blocks = -(-size // block)
    blocks = jnp.pad(weights, (0, num_blocks * block - size)).reshape(num_blocks, block)
    block_sum = jnp.sum(blocks, axis=1)
    block_cum = jnp.cumsum(block_sum)
    total = block_cum[-1]
    target = u * total

    def last_positive(x: jax.Array) -> jax.Array:  # index of the last entry > 0 along the last axis
        n = x.shape[-1]
        return (n - 1 - jnp.argmax(jnp.flip(x > 0, axis=-1), axis=-1)).astype(jnp.int32)

    b = jnp.searchsorted(block_cum, target, side="right").astype(jnp.int32)  # first block with cum > target
    b = jnp.minimum(b, last_positive(block_sum))
    before = jnp.where(b > 0, block_cum[jnp.maximum(b - 1, 0)], 0.0)
    offset = jnp.maximum(target - before, 0.0)
    chosen = blocks[b]  # [B, S]
    inner = jnp.cumsum(chosen, axis=1)
    i = jnp.sum(inner <= offset[:, None], axis=1).astype(jnp.int32)  # first entry with cum > offset
    i = jnp.minimum(i, last_positive(chosen))
    return b * block + i, total


def sample_prioritized(
    state: BufferState,
    rng: jax.Array,
    batch_size: int,
    seq_len: int,
    alpha: float = 0.6,
    beta: float = 0.4,
    past_end: bool = False,
) -> Batch:
    """Sample windows with probability ``priority^alpha`` over valid starts, with importance weights.

    ``P(env, row) = p^alpha / sum_valid p^alpha`` for valid starts (see the
    module docstring), 0 otherwise; sampled with replacement.  ``weight =
    (N_valid * P)^-beta``, divided by its maximum over the batch.  The batch's
    ``env`` / ``row`` identify the starts for ``update_priorities``.
    Precondition (as ``sample``): the buffer holds at least one valid window
    and is prioritized (``init(..., prioritized=True)``).  ``past_end`` as in ``sample``.
    """
    num_rows, num_envs = state.episode_step.shape
    if not is_prioritized(state):
        raise ValueError("sample_prioritized needs a buffer made with init(..., prioritized=True)")
    if not 1 <= seq_len <= num_rows:
        raise ValueError(f"seq_len must be in [1, {num_rows}], got {seq_len}")
    valid = valid_start_mask(state, seq_len, past_end)
    scaled = jnp.where(valid, state.priority**alpha, 0.0).reshape(-1)  # row-major (row, env)
    u = jax.random.uniform(rng, (batch_size,), jnp.float32)
    index, total = _inverse_cdf(scaled, u)
    row, env = index // num_envs, index % num_envs
    prob = scaled[index] / total
    num_valid = jnp.sum(valid, dtype=jnp.int32).astype(jnp.float32)
    weight = (num_valid * prob) ** (-beta)
    weight = weight / jnp.max(weight)
    return gather(state, env, row, seq_len, past_end)._replace(weight=weight)


def update_priorities(state: BufferState, env: jax.Array, row: jax.Array, priorities: jax.Array) -> BufferState:
    """Write ``priorities + PRIORITY_EPS`` at window starts ``(row[b], env[b])``.

    With repeated starts in one batch, one of their values is kept.  The
    priority new rows enter at is taken by ``add`` when they arrive.  A no-op
    on a uniform buffer.
    """
    if not is_prioritized(state):
        return state
    priority = state.priority.at[row, env].set(jnp.asarray(priorities, jnp.float32) + PRIORITY_EPS)
    return state._replace(priority=priority)
