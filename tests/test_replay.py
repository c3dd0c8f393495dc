"""Tests for the on-device replay buffer (anakin_tdmpc.loop.replay).

Synthetic data encodes where every value came from, so each sampled window can
be decoded and checked:

* ``obs[..., 0] = env``, ``obs[..., 1] = t`` (global insertion time),
  ``obs[..., 2] = episode_step``;
* ``action[..., 0] = env``, ``action[..., 1] = t``;
* ``reward = env * 1e5 + t``.

Episode steps follow ``(t + phase[env]) % ep_len[env]``, i.e. episodes of fixed
length per env with per-env phase so resets are not aligned across envs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc.loop import replay

OBS_DIM = 4
ACT_DIM = 2
NO_RESET = 10**6  # episode length that never resets within a test


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------


def synthetic_row(t, ep_lens, phases):
    """One insertion row for all envs at global time ``t`` (see module docstring)."""
    num_envs = ep_lens.shape[0]
    env = jnp.arange(num_envs, dtype=jnp.float32)
    tf = jnp.asarray(t, jnp.float32)
    step = ((t + phases) % ep_lens).astype(jnp.int32)
    obs = jnp.zeros((num_envs, OBS_DIM), jnp.float32)
    obs = obs.at[:, 0].set(env).at[:, 1].set(tf).at[:, 2].set(step.astype(jnp.float32))
    action = jnp.zeros((num_envs, ACT_DIM), jnp.float32).at[:, 0].set(env).at[:, 1].set(tf)
    reward = env * 1e5 + tf
    return obs, action, reward, step


@functools.partial(jax.jit, static_argnames=("num_steps", "seq_len"))
def fill(state, num_steps, ep_lens, phases, num_active=None, seq_len=None):
    """Insert rows for ``t = 0 .. num_steps-1`` (only ``t < num_active`` if given); ``seq_len`` for a
    prioritized replay."""
    ep_lens = jnp.asarray(ep_lens, jnp.int32)
    phases = jnp.asarray(phases, jnp.int32)

    def body(state, t):
        new = replay.add(state, *synthetic_row(t, ep_lens, phases), seq_len)
        if num_active is None:
            return new, None
        active = t < num_active
        return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), None

    state, _ = jax.lax.scan(body, state, jnp.arange(num_steps, dtype=jnp.int32))
    return state


def make_filled(capacity, num_envs, seq_len, num_steps, ep_lens=NO_RESET, phases=0):
    state = replay.init(capacity, num_envs, OBS_DIM, ACT_DIM, seq_len)
    ep_lens = np.broadcast_to(np.asarray(ep_lens), (num_envs,))
    phases = np.broadcast_to(np.asarray(phases), (num_envs,))
    return fill(state, num_steps, ep_lens, phases)


sample_jit = jax.jit(replay.sample, static_argnames=("batch_size", "seq_len", "num_candidates"))
starts_jit = jax.jit(replay.sample_starts, static_argnames=("batch_size", "seq_len", "num_candidates"))


def check_windows(batch, num_written, num_rows):
    """Assert every window is valid; return decoded ``(env, t0)`` arrays of shape [B]."""
    obs = np.asarray(batch.obs)
    action = np.asarray(batch.action)
    reward = np.asarray(batch.reward)
    seq_len = obs.shape[0]
    env, t, step = obs[..., 0], obs[..., 1], obs[..., 2]
    # One env per window.
    np.testing.assert_array_equal(env, np.broadcast_to(env[:1], env.shape))
    # Consecutive insertion times: no jump across the write pointer or across envs.
    np.testing.assert_array_equal(np.diff(t, axis=0), 1.0)
    # Within one episode: episode step strictly +1 along the window.
    np.testing.assert_array_equal(np.diff(step, axis=0), 1.0)
    # Inside the written range, oldest -> newest.
    oldest_t = max(num_written - num_rows, 0)
    assert t[0].min() >= oldest_t
    assert t[-1].max() <= num_written - 1
    # Actions / rewards of rows r .. r+H-1 belong to obs rows r .. r+H-1.
    np.testing.assert_array_equal(action[..., 0], env[: seq_len - 1])
    np.testing.assert_array_equal(action[..., 1], t[: seq_len - 1])
    np.testing.assert_array_equal(reward, env[: seq_len - 1] * 1e5 + t[: seq_len - 1])
    return env[0].astype(np.int64), t[0].astype(np.int64)


def brute_force_valid(state, seq_len):
    """Reference validity mask [T, N] computed by walking every window in numpy."""
    steps = np.asarray(state.episode_step)
    num_rows, num_envs = steps.shape
    valid = np.zeros((num_rows, num_envs), bool)
    for env in range(num_envs):
        size, pointer = int(state.size[env]), int(state.pointer[env])
        oldest = (pointer - size) % num_rows
        for offset in range(size - seq_len + 1):
            rows = (oldest + offset + np.arange(seq_len)) % num_rows
            valid[rows[0], env] = np.all(np.diff(steps[rows, env]) == 1)
    return valid


# ---------------------------------------------------------------------------
# Sizing, init, add.
# ---------------------------------------------------------------------------


def test_rows_for_and_memory_bytes():
    assert replay.rows_for(1_000_000, 16, 4) == 62_500
    # 62_500 rows * 16 envs * (4 * (24 + 6) + 4 + 4 + 1) bytes + an int32 pointer and size per env.
    assert replay.memory_bytes(1_000_000, 16, 24, 6, 4) == 129_000_128
    assert replay.rows_for(1_000_001, 16, 4) == 62_501  # ceil
    assert replay.rows_for(5, 8, 4) == 4  # at least seq_len rows
    assert replay.rows_for(7, 1, 4) == 7
    with pytest.raises(ValueError):
        replay.rows_for(0, 16, 4)


def test_init_shapes_and_dtypes():
    state = replay.init(100, 3, OBS_DIM, ACT_DIM, 4)
    assert state.obs.shape == (34, 3, OBS_DIM) and state.obs.dtype == jnp.float32
    assert state.action.shape == (34, 3, ACT_DIM) and state.action.dtype == jnp.float32
    assert state.reward.shape == (34, 3) and state.reward.dtype == jnp.float32
    assert state.episode_step.shape == (34, 3) and state.episode_step.dtype == jnp.int32
    assert np.all(np.asarray(state.episode_step) == -1)
    assert state.pointer.dtype == jnp.int32 and state.size.dtype == jnp.int32
    assert state.pointer.shape == state.size.shape == (3,)
    assert not np.any(state.pointer) and not np.any(state.size) and not np.any(state.terminal)
    assert int(replay.num_valid_windows(state, 4)) == 0


def test_add_writes_row_and_wraps():
    state = replay.init(8, 2, OBS_DIM, ACT_DIM, 4)  # T = 4
    ep_lens, phases = jnp.full((2,), NO_RESET), jnp.zeros((2,), jnp.int32)
    add = jax.jit(replay.add)
    for t in range(6):
        state = add(state, *synthetic_row(t, ep_lens, phases))
        np.testing.assert_array_equal(state.pointer, [(t + 1) % 4] * 2)
        np.testing.assert_array_equal(state.size, [min(t + 1, 4)] * 2)
    # Rows hold t = 4, 5, 2, 3 after wrapping.
    np.testing.assert_array_equal(np.asarray(state.obs[:, 0, 1]), [4, 5, 2, 3])
    np.testing.assert_array_equal(np.asarray(state.obs[:, 1, 0]), [1, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(state.reward[:, 1]), 1e5 + np.array([4, 5, 2, 3]))
    np.testing.assert_array_equal(np.asarray(state.episode_step[:, 0]), [4, 5, 2, 3])


def test_add_is_in_place_when_donated():
    state = replay.init(1000, 3, OBS_DIM, ACT_DIM, 4)
    row = synthetic_row(0, jnp.full((3,), NO_RESET), jnp.zeros((3,), jnp.int32))
    add = jax.jit(replay.add, donate_argnums=0)
    compiled = add.lower(state, *row).compile()
    assert "input_output_alias" in compiled.as_text()  # outputs alias the donated inputs
    new_state = add(state, *row)
    assert state.obs.is_deleted()  # the donated buffer was consumed, not copied
    np.testing.assert_array_equal(new_state.size, [1, 1, 1])


def test_num_valid_windows_matches_brute_force():
    for num_steps, ep_lens in [(3, 7), (30, 7), (95, 7), (95, [2, 4, 9]), (95, NO_RESET)]:
        state = make_filled(120, 3, 4, num_steps, ep_lens=ep_lens, phases=[0, 2, 5])
        mask = brute_force_valid(state, 4)
        np.testing.assert_array_equal(np.asarray(replay.valid_start_mask(state, 4)), mask)
        assert int(replay.num_valid_windows(state, 4)) == mask.sum()


# ---------------------------------------------------------------------------
# Sampling: shapes, jit, scan.
# ---------------------------------------------------------------------------


def test_sample_shapes_and_dtypes():
    state = make_filled(300, 3, 4, 50)
    batch = sample_jit(state, jax.random.key(0), batch_size=32, seq_len=4)
    assert isinstance(batch, replay.Batch)
    assert batch.obs.shape == (4, 32, OBS_DIM) and batch.obs.dtype == jnp.float32
    assert batch.action.shape == (3, 32, ACT_DIM) and batch.action.dtype == jnp.float32
    assert batch.reward.shape == (3, 32) and batch.reward.dtype == jnp.float32
    check_windows(batch, 50, 100)
    # Works with legacy uint32 keys too.
    check_windows(sample_jit(state, jax.random.PRNGKey(1), batch_size=8, seq_len=4), 50, 100)


def test_sample_inside_scan_that_adds():
    seq_len, num_envs, capacity = 4, 3, 60  # T = 20
    ep_lens = jnp.array([7, 9, NO_RESET], jnp.int32)
    phases = jnp.array([0, 3, 0], jnp.int32)

    @jax.jit
    def run(state, rng):
        def body(state, inp):
            t, key = inp
            state = replay.add(state, *synthetic_row(t, ep_lens, phases))
            return state, replay.sample(state, key, 16, seq_len)

        steps = jnp.arange(45, dtype=jnp.int32)
        return jax.lax.scan(body, state, (steps, jax.random.split(rng, 45)))

    state, batches = run(replay.init(capacity, num_envs, OBS_DIM, ACT_DIM, seq_len), jax.random.key(3))
    assert batches.obs.shape == (45, seq_len, 16, OBS_DIM)
    # Env 2 never resets, so from step L-1 on every step has a valid window.
    for step in range(seq_len - 1, 45):
        batch = jax.tree.map(lambda x: x[step], batches)
        check_windows(batch, step + 1, 20)
    np.testing.assert_array_equal(state.size, [20] * 3)
    np.testing.assert_array_equal(state.pointer, [45 % 20] * 3)


# ---------------------------------------------------------------------------
# Sampling: validity.
# ---------------------------------------------------------------------------


def test_never_crosses_reset():
    # N = 3, episodes of length 7 (episode_step 0..6), unaligned, after wrap-around.
    seq_len, num_steps = 4, 200
    state = make_filled(180, 3, seq_len, num_steps, ep_lens=7, phases=[0, 2, 5])  # T = 60
    env, row, fallback = starts_jit(state, jax.random.key(0), batch_size=20_000, seq_len=seq_len)
    batch = replay.gather(state, env, row, seq_len)
    check_windows(batch, num_steps, 60)
    # 3/7 of proposals are invalid: the K = 8 fallback fires with prob ~1e-3 per entry.
    assert 0 < int(fallback.sum()) < 100


@pytest.mark.parametrize("num_candidates", [1, 8])
@pytest.mark.parametrize("ep_lens", [4, 5, [2, 4, 5], [1, 1, 5]])
def test_never_crosses_reset_tiny_episodes_fallback(ep_lens, num_candidates):
    # Episode length H+1 or H+2 (a single or two valid starts per episode), and
    # envs whose episodes are too short to hold any window (the fallback must
    # then move to another env).
    seq_len, num_steps = 4, 77
    state = make_filled(150, 3, seq_len, num_steps, ep_lens=ep_lens, phases=[0, 1, 3])  # T = 50
    env, row, fallback = starts_jit(
        state, jax.random.key(1), batch_size=20_000, seq_len=seq_len, num_candidates=num_candidates
    )
    check_windows(replay.gather(state, env, row, seq_len), num_steps, 50)
    if num_candidates == 1:
        assert int(fallback.sum()) > 1000  # the fallback path is exercised heavily
    # Every returned start is valid, including the fixed-up ones.
    mask = brute_force_valid(state, seq_len)
    assert mask[np.asarray(row), np.asarray(env)].all()


def test_single_valid_window_is_always_found():
    # T = 8, N = 2, L = 4: env 0 resets every step; env 1 holds exactly one
    # episode long enough (steps 0,1,2,3 at rows 2..5).
    state = replay.init(16, 2, OBS_DIM, ACT_DIM, 4)
    add = jax.jit(replay.add)
    steps = np.array([[0, 0], [0, 1], [0, 0], [0, 1], [0, 2], [0, 3], [0, 0], [0, 1]], np.int32)
    for t in range(8):
        obs, action, reward, _ = synthetic_row(t, jnp.full((2,), NO_RESET), jnp.zeros((2,), jnp.int32))
        obs = obs.at[:, 2].set(steps[t].astype(np.float32))
        state = add(state, obs, action, reward, jnp.asarray(steps[t]))
    assert int(replay.num_valid_windows(state, 4)) == 1
    env, row, fallback = starts_jit(state, jax.random.key(2), batch_size=1000, seq_len=4)
    assert np.all(np.asarray(env) == 1) and np.all(np.asarray(row) == 2)
    assert int(fallback.sum()) > 0  # 1 of 10 proposals is valid: (9/10)^8 ~ 43% need the fix-up
    check_windows(sample_jit(state, jax.random.key(3), batch_size=100, seq_len=4), 8, 8)


def test_first_true_from_matches_brute_force():
    rng = np.random.default_rng(0)
    search = jax.jit(jax.vmap(replay._first_true_from, in_axes=(0, None)))
    for size in [1, 3, 16, 17, 257]:
        masks = np.stack([rng.random(size) < density for density in [0.0, 0.02, 0.3, 1.0]])
        starts = np.arange(size, dtype=np.int32)
        index, found = map(np.asarray, search(jnp.asarray(masks), jnp.asarray(starts)))
        for mask, idx, fnd in zip(masks, index, found):
            assert np.all(fnd == mask.any())
            if mask.any():
                expected = [next(j % size for j in range(s, s + size) if mask[j % size]) for s in starts]
                np.testing.assert_array_equal(idx, expected)


def test_fallback_fix_up_maps_to_next_valid_start():
    state = make_filled(150, 3, 4, 77, ep_lens=[2, 4, 5], phases=[0, 1, 3])  # T = 50
    mask = brute_force_valid(state, 4)  # [T, N]
    rows, envs = np.meshgrid(np.arange(50), np.arange(3), indexing="ij")
    env, row = replay._next_valid_start(state, jnp.asarray(envs.ravel()), jnp.asarray(rows.ravel()), 4)
    flat_valid = mask.ravel()  # row-major (row, env) order
    for q, (e, r) in enumerate(zip(np.asarray(env), np.asarray(row))):
        expected = next(j % flat_valid.size for j in range(q, q + flat_valid.size) if flat_valid[j % flat_valid.size])
        assert (r, e) == divmod(expected, 3)


@pytest.mark.parametrize("ep_lens", [NO_RESET, 7])
@pytest.mark.parametrize("num_steps", [10, 20, 53, 60])
def test_never_crosses_write_pointer(num_steps, ep_lens):
    seq_len, num_rows = 4, 20
    state = make_filled(60, 3, seq_len, num_steps, ep_lens=ep_lens, phases=[0, 2, 5])
    batch = sample_jit(state, jax.random.key(num_steps), batch_size=5000, seq_len=seq_len)
    env, t0 = check_windows(batch, num_steps, num_rows)  # consecutive t, inside [oldest, newest]
    if ep_lens == NO_RESET:
        assert int(replay.num_valid_windows(state, seq_len)) == 3 * (min(num_steps, num_rows) - seq_len + 1)
        # Windows touching the newest row and the oldest row are both reachable.
        assert t0.max() == num_steps - seq_len
        assert t0.min() == max(num_steps - num_rows, 0)


# ---------------------------------------------------------------------------
# Sampling: uniformity.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ep_lens", [NO_RESET, 7])
def test_uniform_over_valid_starts(ep_lens):
    """Empirical (env, start) histogram vs. uniform over valid starts.

    Bounds (fixed seed, n = 400k samples): with ~100-141 valid cells the
    expected count per cell is >= 2800 (sd ~ 1.9%), so we require a max
    relative deviation < 10% (> 5 sd) and a chi-square statistic below
    df + 6 * sqrt(2 df) (~ p < 1e-6 under the normal approximation).  With
    ep_len 7 the default K = 8 leaves fallback mass (3/7)^8 ~ 1e-3, far below
    these bounds.
    """
    seq_len, num_envs, num_rows, num_steps, n = 4, 3, 50, 77, 400_000
    state = make_filled(150, num_envs, seq_len, num_steps, ep_lens=ep_lens, phases=[0, 2, 5])
    batch = sample_jit(state, jax.random.key(42), batch_size=n, seq_len=seq_len)
    env, t0 = check_windows(batch, num_steps, num_rows)

    oldest_t = num_steps - num_rows
    counts = np.zeros((num_envs, num_rows - seq_len + 1))
    np.add.at(counts, (env, t0 - oldest_t), 1)
    # Valid starts: all offsets for NO_RESET; for periodic episodes those whose
    # window does not reach past the episode's last step.
    steps = (np.arange(oldest_t, num_steps - seq_len + 1)[None, :] + np.array([0, 2, 5])[:, None]) % ep_lens
    valid = steps + seq_len - 1 < ep_lens
    assert int(replay.num_valid_windows(state, seq_len)) == valid.sum()
    assert counts[~valid].sum() == 0

    expected = n / valid.sum()
    observed = counts[valid]
    max_rel_dev = np.abs(observed / expected - 1).max()
    chi2 = ((observed - expected) ** 2 / expected).sum()
    df = valid.sum() - 1
    assert max_rel_dev < 0.10, max_rel_dev
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, df)


# ---------------------------------------------------------------------------
# Edge configurations.
# ---------------------------------------------------------------------------


def test_small_ring_capacity_below_num_envs():
    # capacity 5 < N = 8 -> T = max(1, L) = 4: exactly one window per env once full.
    seq_len = 4
    state = make_filled(5, 8, seq_len, 11)
    assert state.obs.shape[0] == 4
    assert int(replay.num_valid_windows(state, seq_len)) == 8
    batch = sample_jit(state, jax.random.key(0), batch_size=512, seq_len=seq_len)
    env, t0 = check_windows(batch, 11, 4)
    assert np.all(t0 == 7) and set(env.tolist()) == set(range(8))
    # Same ring with resets: envs whose window crosses a reset are never returned.
    state = make_filled(5, 8, seq_len, 11, ep_lens=5, phases=np.arange(8))
    env, _ = check_windows(sample_jit(state, jax.random.key(1), batch_size=512, seq_len=seq_len), 11, 4)
    assert int(replay.num_valid_windows(state, seq_len)) == len(set(env.tolist())) == 2


def test_single_env():
    seq_len = 6
    state = make_filled(40, 1, seq_len, 93, ep_lens=11, phases=0)
    batch = sample_jit(state, jax.random.key(0), batch_size=4000, seq_len=seq_len)
    env, t0 = check_windows(batch, 93, 40)
    assert np.all(env == 0)
    assert len(set(t0.tolist())) == int(replay.num_valid_windows(state, seq_len))


def test_vmap_over_two_buffers():
    """Two independent buffers (different fill levels, pointers, episode lengths)."""
    seq_len, num_envs, capacity = 4, 3, 60  # T = 20
    single = replay.init(capacity, num_envs, OBS_DIM, ACT_DIM, seq_len)
    states = jax.tree.map(lambda x: jnp.stack([x, x]), single)
    ep_lens = jnp.array([[7, 7, 7], [NO_RESET, 5, 9]], jnp.int32)
    phases = jnp.array([[0, 2, 5], [0, 1, 2]], jnp.int32)
    num_active = jnp.array([13, 37], jnp.int32)
    states = jax.vmap(lambda s, e, p, a: fill(s, 40, e, p, a))(states, ep_lens, phases, num_active)
    np.testing.assert_array_equal(np.asarray(states.size), [[13] * 3, [20] * 3])
    np.testing.assert_array_equal(np.asarray(states.pointer), [[13] * 3, [37 % 20] * 3])

    keys = jax.random.split(jax.random.key(0), 2)
    batches = jax.jit(jax.vmap(lambda s, k: replay.sample(s, k, 3000, seq_len)))(states, keys)
    counts = jax.vmap(lambda s: replay.num_valid_windows(s, seq_len))(states)
    for i in range(2):
        batch = jax.tree.map(lambda x: x[i], batches)
        state = jax.tree.map(lambda x: x[i], states)
        env, t0 = check_windows(batch, int(num_active[i]), 20)
        assert int(counts[i]) == brute_force_valid(state, seq_len).sum()
        assert len(set(zip(env.tolist(), t0.tolist()))) == int(counts[i])  # full coverage


# ---------------------------------------------------------------------------
# Prioritized replay (TD-MPC).
# ---------------------------------------------------------------------------

per_jit = jax.jit(replay.sample_prioritized, static_argnames=("batch_size", "seq_len", "alpha", "beta"))


def make_prioritized(capacity, num_envs, seq_len, num_steps, ep_lens=NO_RESET, phases=0):
    state = replay.init(capacity, num_envs, OBS_DIM, ACT_DIM, seq_len, prioritized=True)
    ep_lens = np.broadcast_to(np.asarray(ep_lens), (num_envs,))
    phases = np.broadcast_to(np.asarray(phases), (num_envs,))
    return fill(state, num_steps, ep_lens, phases, seq_len=seq_len)


def set_all_priorities(state, priorities):
    """Write a full [T, N] priority table through update_priorities (stores priorities + eps)."""
    rows, envs = np.meshgrid(np.arange(priorities.shape[0]), np.arange(priorities.shape[1]), indexing="ij")
    return replay.update_priorities(
        state, jnp.asarray(envs.ravel()), jnp.asarray(rows.ravel()), jnp.asarray(priorities.ravel(), jnp.float32)
    )


def test_prioritized_init_memory_and_uniform_layout():
    state = replay.init(100, 3, OBS_DIM, ACT_DIM, 4, prioritized=True)
    assert state.priority.shape == (34, 3) and state.priority.dtype == jnp.float32
    assert np.all(np.asarray(state.priority) == 1.0) and float(state.max_priority) == 1.0
    assert replay.is_prioritized(state)
    uniform = replay.init(100, 3, OBS_DIM, ACT_DIM, 4)
    assert uniform.priority.shape == (0, 3) and uniform.max_priority.shape == (0,)
    assert not replay.is_prioritized(uniform)
    assert replay.update_priorities(uniform, jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32), jnp.ones(2)) is uniform
    # one float32 priority per (row, env) plus the max_priority scalar
    assert replay.memory_bytes(1_000_000, 16, 24, 6, 4, prioritized=True) == 129_000_128 + 62_500 * 16 * 4 + 4
    # uniform batches carry their starts and unit weights
    batch = sample_jit(make_filled(300, 3, 4, 50), jax.random.key(0), batch_size=32, seq_len=4)
    assert batch.env.dtype == jnp.int32 and batch.row.dtype == jnp.int32
    np.testing.assert_array_equal(batch.weight, 1.0)
    np.testing.assert_array_equal(np.asarray(batch.obs[0, :, 0]), np.asarray(batch.env))


def test_new_data_enters_at_max_priority():
    add = jax.jit(replay.add, static_argnums=5)
    row = functools.partial(synthetic_row, ep_lens=jnp.full((2,), NO_RESET), phases=jnp.zeros((2,), jnp.int32))
    state = make_prioritized(40, 2, 4, 6)  # T = 20; valid starts: rows 0-2
    np.testing.assert_array_equal(np.asarray(state.priority[:6]), 1.0)  # no valid start yet: 1.0
    state = replay.update_priorities(state, jnp.array([0, 1, 1]), jnp.array([2, 4, 0]), jnp.array([3.5, 0.25, 7.0]))
    state = add(state, *row(6), 4)
    np.testing.assert_allclose(np.asarray(state.priority[6]), 7.0 + replay.PRIORITY_EPS)
    assert float(state.max_priority) == pytest.approx(7.0 + replay.PRIORITY_EPS)
    # the max is over the priorities stored now: lowering the largest one lowers what new data gets
    state = replay.update_priorities(state, jnp.array([1, 0, 1]), jnp.array([0, 6, 6]), jnp.array([0.5, 0.5, 0.5]))
    state = add(state, *row(7), 4)
    np.testing.assert_allclose(np.asarray(state.priority[7]), 3.5 + replay.PRIORITY_EPS)
    # row 4 (priority 0.25) is a valid start now: still 3.5 enters
    state = add(state, *row(8), 4)
    np.testing.assert_allclose(np.asarray(state.priority[8]), 3.5 + replay.PRIORITY_EPS)


def test_new_data_after_every_priority_falls_below_one():
    """Sparse rewards: once every priority that training writes is below 1, new data must enter at the current
    max, not at the 1.0 (or an old spike) of rows that were never trained on."""
    seq_len, num_envs = 4, 2
    steps = lambda t: synthetic_row(t, jnp.full((num_envs,), NO_RESET), jnp.zeros((num_envs,), jnp.int32))  # noqa: E731
    state = make_prioritized(40, num_envs, seq_len, 12)  # T = 20, rows 0-11 written (at 1.0), starts 0-8 valid
    rows, envs = np.meshgrid(np.arange(9), np.arange(num_envs), indexing="ij")
    update = lambda state, values: replay.update_priorities(  # noqa: E731 - what training writes: valid starts
        state, jnp.asarray(envs.ravel()), jnp.asarray(rows.ravel()), jnp.asarray(values.ravel(), jnp.float32))
    state = update(state, np.full((9, num_envs), 1e4))  # a spike
    low = np.full((9, num_envs), 0.01)
    low[5, 1] = 0.02
    state = update(state, low)  # ... trained away
    state = replay.add(state, *steps(12), seq_len)
    np.testing.assert_allclose(np.asarray(state.priority[12]), 0.02 + replay.PRIORITY_EPS, rtol=1e-6)
    # three more rows make row 12 a valid start; its sampling probability is p^alpha / sum p^alpha over the
    # 2 x 13 valid starts: rows 9-11 still at their entry 1.0 (never trained on), rows 12 and (5, env 1) at
    # 0.02, the other 17 at 0.01
    for t in range(13, 16):
        state = replay.add(state, *steps(t), seq_len)
    valid = np.asarray(replay.valid_start_mask(state, seq_len))
    assert valid.sum() == 2 * 13 and valid[12].all()
    p = np.where(valid, np.asarray(state.priority, np.float64), 0.0) ** 0.6
    hi, lo = (0.02 + 1e-6) ** 0.6, (0.01 + 1e-6) ** 0.6
    np.testing.assert_allclose(p[12, 0] / p.sum(), hi / (6 * 1.0 + 3 * hi + 17 * lo), rtol=1e-5)
    batch = jax.jit(replay.sample_prioritized, static_argnums=(2, 3))(state, jax.random.key(0), 40_000, seq_len)
    drawn = np.mean((np.asarray(batch.row) == 12) & (np.asarray(batch.env) == 0))
    assert drawn == pytest.approx(p[12, 0] / p.sum(), abs=0.003)


def test_rows_that_cannot_start_a_window_do_not_set_the_new_priority():
    """An episode's last rows never start a window; a stale high priority there must not lift new data."""
    seq_len = 3
    state = make_prioritized(40, 1, seq_len, 10, ep_lens=5)  # episodes of 5 rows: starts 3, 4, 8, 9 invalid
    valid = np.asarray(replay.valid_start_mask(state, seq_len))[:, 0]
    assert not valid[3] and not valid[4] and valid[5]
    table = np.full((40, 1), 0.5, np.float32)
    table[3, 0] = 50.0  # cannot be sampled
    state = set_all_priorities(state, table)
    state = replay.add(state, *synthetic_row(10, jnp.array([5]), jnp.array([0])), seq_len)
    np.testing.assert_allclose(np.asarray(state.priority[10]), 0.5 + replay.PRIORITY_EPS)


def test_prioritized_add_needs_the_window_length():
    state = replay.init(40, 2, OBS_DIM, ACT_DIM, 4, prioritized=True)
    with pytest.raises(ValueError, match="seq_len"):
        replay.add(state, *synthetic_row(0, jnp.full((2,), NO_RESET), jnp.zeros((2,), jnp.int32)))


def test_update_priorities_writes_the_right_cells():
    state = make_prioritized(30, 3, 4, 12)  # T = 10
    before = np.asarray(state.priority).copy()
    env, row = jnp.array([2, 0, 1, 2]), jnp.array([3, 7, 0, 9])
    new = replay.update_priorities(state, env, row, jnp.array([0.5, 2.0, 0.0, 4.0]))
    expected = before.copy()
    expected[[3, 7, 0, 9], [2, 0, 1, 2]] = np.array([0.5, 2.0, 0.0, 4.0]) + replay.PRIORITY_EPS
    np.testing.assert_array_equal(np.asarray(new.priority), expected.astype(np.float32))
    # everything else is untouched
    for a, b in zip(jax.tree.leaves(state._replace(priority=None, max_priority=None)),
                    jax.tree.leaves(new._replace(priority=None, max_priority=None))):
        np.testing.assert_array_equal(a, b)


def test_inverse_cdf_matches_brute_force():
    rng = np.random.default_rng(0)
    draw = jax.jit(replay._inverse_cdf)
    for size in [1, 5, 16, 17, 300]:
        weights = rng.random(size) * (rng.random(size) < 0.5)
        weights[rng.integers(size)] = 0.7  # at least one positive entry
        u = np.concatenate([np.linspace(0, 1, 500, endpoint=False), [0.0, 1 - 1e-7]]).astype(np.float32)
        index, total = map(np.asarray, draw(jnp.asarray(weights, jnp.float32), jnp.asarray(u)))
        assert total == pytest.approx(weights.sum(), rel=1e-5)
        assert np.all(weights[index] > 0)  # never an entry of zero probability
        cum = np.cumsum(weights)
        expected = np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), size - 1)
        # equal except where u * total lies within float rounding of an edge
        near_edge = np.min(np.abs(u[:, None] * cum[-1] - cum[None, :]), axis=1) < 1e-5 * cum[-1]
        assert np.all((index == expected) | near_edge)


def test_prioritized_frequencies_over_valid_windows_only():
    """Empirical (env, start) histogram vs. P = p^alpha / sum over valid starts of p^alpha.

    Same geometry as test_uniform_over_valid_starts (ep_len 7, wrap-around, 141 cells, 99 valid) with random
    priorities in [0.05, 5] on every cell, invalid ones included: they must never be drawn. Bounds as there:
    n = 400k draws, smallest expected count ~ 1100 (sd ~ 3%), max relative deviation < 20% and chi-square
    below df + 6 sqrt(2 df).
    """
    seq_len, num_envs, num_rows, num_steps, n, alpha = 4, 3, 50, 77, 400_000, 0.6
    state = make_prioritized(150, num_envs, seq_len, num_steps, ep_lens=7, phases=[0, 2, 5])
    priorities = np.random.default_rng(1).uniform(0.05, 5.0, (num_rows, num_envs)).astype(np.float32)
    state = set_all_priorities(state, priorities)
    batch = per_jit(state, jax.random.key(7), batch_size=n, seq_len=seq_len, alpha=alpha, beta=0.4)
    env, t0 = check_windows(batch, num_steps, num_rows)  # every window valid: no reset, no pointer crossing
    mask = brute_force_valid(state, seq_len)
    rows = np.asarray(batch.row)
    assert mask[rows, env].all()
    counts = np.zeros((num_rows, num_envs))
    np.add.at(counts, (rows, env), 1)
    assert counts[~mask].sum() == 0
    p = (priorities.astype(np.float64) + replay.PRIORITY_EPS) ** alpha * mask
    expected = n * p[mask] / p.sum()
    observed = counts[mask]
    df = mask.sum() - 1
    assert np.abs(observed / expected - 1).max() < 0.2
    assert ((observed - expected) ** 2 / expected).sum() < df + 6 * np.sqrt(2 * df)


def test_importance_weights_exact_on_a_small_case():
    """T = 6 rows, N = 2 envs, L = 2, 5 rows written without resets: valid starts are rows 0..3 of each env
    (8 windows). Weights (N_valid * P)^-beta divided by the batch maximum, P = p^alpha / sum_valid p^alpha."""
    alpha, beta = 0.6, 0.4
    state = make_prioritized(12, 2, 2, 5)
    table = np.array([[1.0, 2.0], [4.0, 0.5], [3.0, 1.5], [0.25, 8.0], [100.0, 100.0], [50.0, 50.0]], np.float32)
    state = set_all_priorities(state, table)
    mask = brute_force_valid(state, 2)
    assert mask.sum() == 8 and not mask[4:].any()
    batch = per_jit(state, jax.random.key(3), batch_size=256, seq_len=2, alpha=alpha, beta=beta)
    rows, envs = np.asarray(batch.row), np.asarray(batch.env)
    p = (table.astype(np.float64) + replay.PRIORITY_EPS) ** alpha * mask
    prob = p[rows, envs] / p.sum()
    weight = (8 * prob) ** -beta
    np.testing.assert_allclose(np.asarray(batch.weight), weight / weight.max(), rtol=1e-5)
    assert mask[rows, envs].all()
    # the whole batch of the lowest-priority valid start (row 3, env 0) has weight 1 when it is drawn
    assert np.isclose(np.asarray(batch.weight)[(rows == 3) & (envs == 0)], 1.0).all()


def test_prioritized_sampling_in_a_scan_with_updates():
    """add -> sample_prioritized -> update_priorities inside one jitted scan, as the fused loop does."""
    seq_len, num_envs = 3, 2
    ep_lens, phases = jnp.array([5, NO_RESET], jnp.int32), jnp.array([1, 0], jnp.int32)

    @jax.jit
    def run(state, rng):
        def body(state, inp):
            t, key = inp
            state = replay.add(state, *synthetic_row(t, ep_lens, phases), seq_len)
            batch = replay.sample_prioritized(state, key, 8, seq_len)
            state = replay.update_priorities(state, batch.env, batch.row, batch.reward[0] * 0 + t.astype(jnp.float32))
            return state, batch

        steps = jnp.arange(2, 30, dtype=jnp.int32)
        state = jax.lax.fori_loop(0, 2, lambda t, s: replay.add(s, *synthetic_row(t, ep_lens, phases), seq_len), state)
        return jax.lax.scan(body, state, (steps, jax.random.split(rng, 28)))

    state, batches = run(replay.init(40, num_envs, OBS_DIM, ACT_DIM, seq_len, prioritized=True), jax.random.key(0))
    for i in range(28):
        check_windows(jax.tree.map(lambda x: x[i], batches), i + 3, 20)
    # the last row entered before step 29's priorities were written: at step 28's, the largest stored then
    assert float(state.max_priority) == pytest.approx(28 + replay.PRIORITY_EPS)


# ---------------------------------------------------------------------------
# Episode ends: final rows and terminal flags.
# ---------------------------------------------------------------------------


def test_final_row_follows_the_last_transition():
    """An env whose episode ends writes its transition and then a final row (final obs, step + 1, terminal
    flag); the other env writes one row; each pointer advances by what its env wrote."""
    state = replay.init(16, 2, OBS_DIM, ACT_DIM, 3)  # T = 8
    obs, action, reward, step = synthetic_row(4, jnp.array([NO_RESET, NO_RESET]), jnp.zeros(2, jnp.int32))
    final_obs = jnp.full((2, OBS_DIM), 7.0)
    state = replay.add(state, obs, action, reward, step, None, final_obs, jnp.array([True, False]),
                       jnp.array([True, True]))
    np.testing.assert_array_equal(state.pointer, [2, 1])
    np.testing.assert_array_equal(state.size, [2, 1])
    np.testing.assert_array_equal(state.obs[:2, 0], [obs[0], final_obs[0]])
    np.testing.assert_array_equal(state.episode_step[:2, 0], [4, 5])
    np.testing.assert_array_equal(state.action[1, 0], [0.0, 0.0])
    assert float(state.reward[1, 0]) == 0.0
    np.testing.assert_array_equal(state.terminal[:, 0], [False, True] + [False] * 6)
    # env 1 did not end: its terminated flag is ignored and its second row never written
    assert not np.any(state.terminal[:, 1]) and int(state.episode_step[1, 1]) == -1


def run_episodes(lengths, terminates, num_rows_capacity, seq_len=4, prioritized=False, past_end=False):
    """One env living through episodes of the given lengths (each ends terminated or by time limit), as the
    fused loop writes them: obs[..., 1] numbers the episode, obs[..., 2] the step, final rows obs[..., 3] = 1."""
    state = replay.init(num_rows_capacity, 1, OBS_DIM, ACT_DIM, seq_len, prioritized=prioritized)
    for episode, (length, term) in enumerate(zip(lengths, terminates)):
        for step in range(length):
            obs = jnp.array([[0.0, episode, step, 0.0]])
            done = step == length - 1
            final_obs = jnp.array([[0.0, episode, step + 1, 1.0]])
            state = replay.add(state, obs, jnp.ones((1, ACT_DIM)), jnp.array([1.0]), jnp.array([step]), seq_len,
                               final_obs, jnp.array([done]), jnp.array([done and term]), past_end=past_end)
    return state


def test_windows_end_at_a_terminal_step_and_never_cross_it():
    seq_len = 4
    lengths = [5, 3, 9, 4, 6, 3]
    terminates = [True, False, True, True, False, True]
    state = run_episodes(lengths, terminates, 200, seq_len)
    assert int(state.size[0]) == sum(lengths) + len(lengths)  # every episode's final row stored
    # valid starts per episode of length n (n + 1 rows): n + 1 - (seq_len - 1)
    assert int(replay.num_valid_windows(state, seq_len)) == sum(n + 2 - seq_len for n in lengths)
    batch = jax.jit(replay.sample, static_argnums=(2, 3))(state, jax.random.key(0), 2000, seq_len)
    obs, term = np.asarray(batch.obs), np.asarray(batch.terminated)
    episode = obs[..., 1]
    assert np.all(episode == episode[0])  # one episode per window
    np.testing.assert_array_equal(np.diff(obs[..., 2], axis=0), 1)  # consecutive steps
    assert not np.any(obs[:-1, :, 3])  # a final row is only ever a window's last observation
    ends = obs[-1, :, 3] == 1
    assert ends.any()  # the last transition of an episode is sampled
    # terminated is 1 exactly at a window's last transition whose next observation ended a terminating episode
    ends_terminal = ends & np.asarray(terminates)[episode[0].astype(int)]
    np.testing.assert_array_equal(term[-1], ends_terminal.astype(np.float32))
    assert not np.any(term[:-1]) and ends_terminal.any() and (ends & ~ends_terminal).any()


# ---------------------------------------------------------------------------
# Episodic tasks: windows that run past their episode's end (past_end).
# ---------------------------------------------------------------------------


def decode_past_end(batch, terminates):
    """The mask and terminal flags a window of run_episodes' data must carry, from its decoded obs."""
    obs = np.asarray(batch.obs)
    episode = obs[..., 1]
    inside = episode[1:] == episode[0]  # row r + t + 1 belongs to the start's episode
    final_next = obs[1:, :, 3] == 1
    terminal_next = final_next & np.asarray(terminates)[episode[1:].astype(int)]
    return inside.astype(np.float32), (inside & terminal_next).astype(np.float32)


def test_past_end_windows_start_at_every_transition_and_mask_the_rest():
    seq_len = 4
    lengths = [5, 3, 9, 4, 6, 3]
    terminates = [True, False, True, True, False, True]
    state = run_episodes(lengths, terminates, 200, seq_len)
    size = int(state.size[0])
    # every transition row may start a window (never a final row), but the window must lie in written data:
    # the last seq_len - 1 rows cannot start; of those, the last episode's final row and 2 transitions
    assert int(replay.num_valid_windows(state, seq_len, past_end=True)) == sum(lengths) - (seq_len - 2)
    steps = np.asarray(state.episode_step[:size, 0])
    expected = np.zeros(state.episode_step.shape, bool)
    expected[: size - seq_len + 1, 0] = np.roll(steps, -1)[: size - seq_len + 1] == steps[: size - seq_len + 1] + 1
    np.testing.assert_array_equal(np.asarray(replay.valid_start_mask(state, seq_len, past_end=True)), expected)

    sample = jax.jit(replay.sample, static_argnames=("batch_size", "seq_len", "past_end"))
    batch = sample(state, jax.random.key(0), batch_size=4000, seq_len=seq_len, past_end=True)
    obs = np.asarray(batch.obs)
    assert not np.any(obs[0, :, 3])  # a final row never starts a window
    mask, terminated = decode_past_end(batch, terminates)
    np.testing.assert_array_equal(np.asarray(batch.mask), mask)
    np.testing.assert_array_equal(np.asarray(batch.terminated), terminated)
    np.testing.assert_array_equal(np.diff(obs[..., 2], axis=0)[mask == 1], 1)  # consecutive inside the episode
    # the mask is a prefix of ones: once past the end, every later step is masked
    assert np.all(np.diff(mask, axis=0) <= 0)
    # the starts the whole-window rule excludes (the last seq_len - 2 transitions of each episode) are drawn
    starts = {(int(e), int(t)) for e, t in zip(obs[0, :, 1], obs[0, :, 2])}
    for episode, n in enumerate(lengths[:-1]):
        assert {(episode, t) for t in range(n)} <= starts
    assert (mask[-1] == 0).any() and (terminated.sum(0) == 1).any()
    # without past_end: the official rule, whole windows and no mask
    batch = sample(state, jax.random.key(0), batch_size=512, seq_len=seq_len, past_end=False)
    assert batch.mask is None and np.all(np.diff(np.asarray(batch.obs)[..., 2], axis=0) == 1)


def test_past_end_mask_and_terminal_flags_by_hand():
    """Episode 0: 5 steps, terminates (rows 0-4, final row 5); episode 1: 2 steps, terminates (rows 6-7, final 8);
    episode 2: 4 steps by time limit (rows 9-12, final 13); then episode 3 (rows 14-)."""
    seq_len = 5
    state = run_episodes([5, 2, 4, 3], [True, True, False, False], 100, seq_len)
    gather = functools.partial(replay.gather, state, jnp.zeros(4, jnp.int32), seq_len=seq_len, past_end=True)
    batch = gather(jnp.array([4, 3, 10, 0], jnp.int32))
    # row 4: 4 -> 5 (the terminal final row), then episode 1 (whose own terminal flag at row 8 is dropped)
    # row 3: 3 -> 4 -> 5 (terminal), then episode 1; row 10: 10 -> 11 -> 12 -> 13 (a time limit's final row)
    # row 0: a whole window inside episode 0
    np.testing.assert_array_equal(np.asarray(batch.mask).T, [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(np.asarray(batch.terminated).T,
                                  [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    # the raw flags of those rows hold episode 1's termination at row 8 (the first window's 4th transition)
    assert bool(state.terminal[8, 0]) and bool(state.terminal[5, 0])
    # final rows (5, 8, 13) never start a window; every transition row before the last seq_len - 1 rows does
    valid = np.asarray(replay.valid_start_mask(state, seq_len, past_end=True))[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(valid), [0, 1, 2, 3, 4, 6, 7, 9, 10, 11, 12])


def test_prioritized_past_end_samples_and_prices_the_starts_near_an_end():
    seq_len = 4
    lengths, terminates = [6, 6, 6], [True, True, False]
    state = run_episodes(lengths, terminates, 100, seq_len, prioritized=True, past_end=True)
    # rows 0-5 episode 0, 6 final; 7-12 episode 1, 13 final; 14-19 episode 2, 20 final
    near_end = jnp.array([4], jnp.int32)  # starts only past_end allows (its window runs past the final row 6)
    state = replay.update_priorities(state, jnp.zeros(1, jnp.int32), near_end, jnp.array([50.0]))
    # new data enters at the largest priority among the starts that can be sampled: 50 with past_end only
    row = (jnp.ones((1, OBS_DIM)), jnp.ones((1, ACT_DIM)), jnp.ones(1), jnp.array([0]))
    with_end = replay.add(state, *row, seq_len, past_end=True)
    without = replay.add(state, *row, seq_len, past_end=False)
    assert float(with_end.max_priority) == pytest.approx(50.0 + replay.PRIORITY_EPS)
    assert float(without.max_priority) == pytest.approx(1.0)
    sample = jax.jit(replay.sample_prioritized, static_argnames=("batch_size", "seq_len", "past_end"))
    batch = sample(state, jax.random.key(1), batch_size=2000, seq_len=seq_len, past_end=True)
    rows = np.asarray(batch.row)
    assert set(rows.tolist()) <= {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17}
    # start 4 has priority 50, the other 15 valid starts 1: P = 50^0.6 / (50^0.6 + 15)
    p4 = 50.0**0.6 / (50.0**0.6 + 15.0)
    assert abs(np.mean(rows == 4) - p4) < 0.04
    mask, terminated = decode_past_end(batch, terminates)
    np.testing.assert_array_equal(np.asarray(batch.mask), mask)
    np.testing.assert_array_equal(np.asarray(batch.terminated), terminated)
    np.testing.assert_array_equal(np.asarray(batch.mask)[:, rows == 4].T[0], [1, 1, 0])
