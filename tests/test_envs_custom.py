"""Our own MJX ports (anakin_tdmpc/envs/custom.py, quadruped.py): names, specs, parity with dm_control,
and one tiny chunk of the fused training loop.

Parity: from our env's initial state (copied into dm_control's physics) and one random action
sequence, 100 control steps of our env are compared with dm_control's. Custom TD-MPC2 tasks run on
dm_control's *base* task (walker-walk, cheetah-run, hopper-hop, pendulum-swingup, ball_in_cup-catch;
the three-link reacher, which dm_control lacks, on our very MJCF in MuJoCo) and their reward is recomputed in
numpy from the official formula. Two comparisons:

* ``free``: both simulators run freely; checks accumulated trajectories. Our envs use playground's
  solver settings (fewer iterations, ``eulerdamp`` off, other sub-steps), so contact-rich bodies
  (walker, hopper, cheetah, quadruped) drift apart chaotically; those are only checked one step at a time.
* ``resync``: before every step dm_control's state is reset to ours; checks obs, reward and one-step
  dynamics for every task, with tolerances stated in ``PARITY``.

Compiling MJX physics on 2 CPU cores takes 10-40 s per task, so the default suite runs a cheap
representative subset; ``-m slow`` runs every task.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anakin_tdmpc.envs import OUR_TASKS, TASK_SOURCES, TASKS, canonical_task_name, make_env

NUM_STEPS = 100
FAST = {"pendulum-spin", "reacher-three-easy", "cup-spin"}


def _params(tasks):
    return [t if t in FAST else pytest.param(t, marks=pytest.mark.slow) for t in tasks]


# --------------------------------------------------------------------- names


def test_new_tasks_are_registered_with_their_source():
    assert set(TASKS) & set(OUR_TASKS) == set()
    assert set(TASK_SOURCES) == set(TASKS) | set(OUR_TASKS)
    assert {TASK_SOURCES[t] for t in OUR_TASKS} == {"ours"} and {TASK_SOURCES[t] for t in TASKS} == {"playground"}
    for task in OUR_TASKS:
        assert canonical_task_name(task) == task
        assert canonical_task_name(f"dm_control/{task}-v0") == task
    assert canonical_task_name("Cheetah_Run_Backwards") == "cheetah-run-backwards"
    assert canonical_task_name("dm_control/quadruped-walk-v0") == "quadruped-walk"


EXPECTED_SPECS = {
    "walker-walk-backwards": (24, 6), "walker-run-backwards": (24, 6), "cheetah-run-backwards": (17, 6),
    "cheetah-run-front": (17, 6), "cheetah-run-back": (17, 6), "cheetah-jump": (17, 6),
    "hopper-hop-backwards": (15, 4), "reacher-three-easy": (8, 3), "reacher-three-hard": (8, 3),
    "cup-spin": (8, 2), "pendulum-spin": (3, 1), "quadruped-walk": (78, 12), "quadruped-run": (78, 12),
}


def test_expected_specs_cover_every_new_task():
    assert set(EXPECTED_SPECS) == set(OUR_TASKS)


@pytest.mark.parametrize("task", _params(sorted(OUR_TASKS)))
def test_spec(task):
    env = make_env(task)
    assert (env.obs_dim, env.action_dim) == EXPECTED_SPECS[task]
    assert env.name == task and env.episode_length == 500


# -------------------------------------------------------------------- parity


def _reference(task):
    """(dm_control-like env with .physics, step(action) -> (obs, reward), sync(state)) for ``task``."""
    from dm_control import suite
    from dm_control.utils import rewards

    inf = float("inf")
    tol = rewards.tolerance
    domain, base = {
        "walker": ("walker", "walk"), "cheetah": ("cheetah", "run"), "hopper": ("hopper", "hop"),
        "pendulum": ("pendulum", "swingup"), "cup": ("ball_in_cup", "catch"), "quadruped": ("quadruped", None),
    }.get(task.split("-")[0], (None, None))

    if task.startswith("reacher-three"):
        from dm_control import mujoco as dm_mujoco
        from dm_control.suite import common

        from anakin_tdmpc.envs.custom import reacher_three_xml

        size = 0.05 if task.endswith("easy") else 0.015
        # No dm_control task to compare with: MuJoCo (C) on the very same model checks the MJX port.
        physics = dm_mujoco.Physics.from_xml_string(reacher_three_xml(size), common.ASSETS)

        def to_target():
            return physics.named.data.geom_xpos["target", :2] - physics.named.data.geom_xpos["finger", :2]

        def step(action):
            physics.set_control(action)
            for _ in range(4):  # 0.02 s control step of 0.005 s sub-steps
                physics.step()
            obs = np.concatenate([physics.data.qpos, to_target(), physics.data.qvel])
            radii = size + physics.named.model.geom_size["finger", 0]
            return obs, tol(np.linalg.norm(to_target()), (0, radii))

        return physics, step

    env = suite.load(domain, task.split("-")[1] if domain == "quadruped" else base, task_kwargs={"random": 0})
    env.reset()
    p = env.physics
    nd = p.named.data

    def speed():
        return nd.sensordata["torso_subtreelinvel"][0]

    def cheetah_up(h):
        return tol(h, bounds=(1.2, inf), margin=0.6)

    def cheetah_stand(foot, v):
        height = (nd.xpos["torso", "z"] + nd.xpos[foot, "z"]) / 2
        return (5 * cheetah_up(height) + tol(speed(), (-v, v), margin=v, value_at_margin=0, sigmoid="linear")) / 6

    def cheetah_run(foot, v):
        up = (3 * cheetah_up(nd.xpos[foot, "z"]) + 2 * cheetah_up(nd.xpos["torso", "z"])) / 5
        return up * (5 * tol(speed(), (v, inf), margin=v, value_at_margin=0, sigmoid="linear") + 1) / 6

    def walker_backwards(v):
        standing = tol(nd.xpos["torso", "z"], bounds=(1.2, inf), margin=0.6)
        stand = (3 * standing + (1 + nd.xmat["torso", "zz"]) / 2) / 4
        move = tol(speed(), (-inf, -v), margin=v / 2, value_at_margin=0.5, sigmoid="linear")
        return stand * (5 * move + 1) / 6

    def cup_spin():
        b2t = nd.site_xpos["target", ["x", "z"]] - nd.xpos["ball", ["x", "z"]]
        size = p.named.model.site_size["target", [0, 2]] - p.named.model.geom_size["ball", 0]
        inside = float(np.all(np.abs(b2t) < size))
        dist = tol(np.linalg.norm(b2t), (0.5, inf), margin=0.25, value_at_margin=0.5, sigmoid="linear")
        vel = np.linalg.norm(nd.qvel[["ball_x", "ball_z"]])
        return (1 - inside) * (dist + 2 * tol(vel, (6, inf), margin=3, value_at_margin=0.5, sigmoid="linear")) / 3

    custom_reward = {
        "walker-walk-backwards": lambda: walker_backwards(1),
        "walker-run-backwards": lambda: walker_backwards(8),
        "cheetah-run-backwards": lambda: tol(speed(), (-inf, -8), margin=8, value_at_margin=0, sigmoid="linear"),
        "cheetah-run-front": lambda: cheetah_run("bfoot", 6),
        "cheetah-run-back": lambda: cheetah_run("ffoot", 6),
        "cheetah-jump": lambda: (cheetah_stand("bfoot", 0.5) + cheetah_stand("ffoot", 0.5)) / 2,
        "hopper-hop-backwards": lambda: tol(nd.xpos["torso", "z"] - nd.xpos["foot", "z"], (0.6, 2))
        * tol(speed(), (-inf, -1), margin=0.5, value_at_margin=0.5, sigmoid="linear"),
        "pendulum-spin": lambda: tol(abs(nd.qvel["hinge"][0]), (9, inf), margin=4.5, value_at_margin=0.5, sigmoid="linear"),
        "cup-spin": cup_spin,
    }.get(task)

    def step(action):
        ts = env.step(action)
        obs = np.concatenate([np.ravel(v) for v in ts.observation.values()])
        return obs, (ts.reward if custom_reward is None else custom_reward())

    return p, step


def _sync(physics, qpos, qvel, act, mocap_pos):
    with physics.reset_context():
        physics.data.qpos[:] = qpos
        physics.data.qvel[:] = qvel
        if physics.model.na:
            physics.data.act[:] = act
        if physics.model.nmocap:
            physics.data.mocap_pos[:] = mocap_pos


PARITY = {
    # task: (free-run obs atol or None, free-run reward atol or None, resync obs atol, resync reward atol)
    # free runs of contact tasks are not compared: different solver iterations make them diverge chaotically.
    "pendulum-spin": (0.2, 0.03, 0.1, 0.01),  # 2 x 0.01 s sub-steps, eulerdamp off vs 0.02 s: velocity off by <0.13
    "reacher-three-easy": (5e-3, 1e-3, 5e-3, 1e-3),  # same model in MuJoCo: float32 vs float64 only
    "reacher-three-hard": (5e-3, 1e-3, 5e-3, 1e-3),
    # 1 solver iteration vs 100 for the taut string and cup contacts: velocity jumps differ by up to ~0.16
    "cup-spin": (None, None, 0.25, 0.02),
    "walker-walk-backwards": (None, None, 0.5, 0.05),
    "walker-run-backwards": (None, None, 0.5, 0.05),
    "cheetah-run-backwards": (None, None, 0.5, 0.05),
    "cheetah-run-front": (None, None, 0.5, 0.05),
    "cheetah-run-back": (None, None, 0.5, 0.05),
    "cheetah-jump": (None, None, 0.5, 0.05),
    "hopper-hop-backwards": (None, None, 0.5, 0.05),
    "quadruped-walk": (None, None, 0.5, 0.05),
    "quadruped-run": (None, None, 0.5, 0.05),
}


def _rollout(task, seed=0):
    """Our env: reset + 100 random-action steps in one jitted program -> numpy (init, states, obs, rewards, actions)."""
    env = make_env(task, action_repeat=1).playground_env

    @jax.jit
    def run(key):
        reset_key, action_key = jax.random.split(key)
        state = env.reset(reset_key)
        actions = jax.random.uniform(action_key, (NUM_STEPS, env.action_size), minval=-1, maxval=1)

        def body(state, action):
            state = env.step(state, action)
            d = state.data
            return state, (d.qpos, d.qvel, d.act, d.mocap_pos, state.obs, state.reward)

        d = state.data
        _, trace = jax.lax.scan(body, state, actions)
        return (d.qpos, d.qvel, d.act, d.mocap_pos, state.obs), trace, actions

    return jax.device_get(run(jax.random.PRNGKey(seed)))


def parity_errors(task):
    """Max abs errors (free obs, free reward, resync obs, resync reward) over the rollout."""
    init, (qpos, qvel, act, mocap, obs, reward), actions = _rollout(task)
    actions = np.asarray(actions, np.float64)
    free_physics, free_step = _reference(task)
    sync_physics, sync_step = _reference(task)
    _sync(free_physics, *[np.asarray(x, np.float64) for x in init[:4]])
    errors = np.zeros(4)
    previous = [np.asarray(x, np.float64) for x in init[:4]]
    for t in range(NUM_STEPS):
        free_obs, free_reward = free_step(actions[t])
        _sync(sync_physics, *previous)
        sync_obs, sync_reward = sync_step(actions[t])
        errors = np.maximum(errors, [
            np.abs(free_obs - obs[t]).max(), abs(free_reward - reward[t]),
            np.abs(sync_obs - obs[t]).max(), abs(sync_reward - reward[t]),
        ])
        previous = [np.asarray(x[t], np.float64) for x in (qpos, qvel, act, mocap)]
    return errors


@pytest.mark.parametrize("task", _params(sorted(OUR_TASKS)))
def test_parity_with_dm_control(task):
    errors = parity_errors(task)
    print(task, "max abs errors (free obs, free reward, resync obs, resync reward):", errors.round(4))
    for error, bound in zip(errors, PARITY[task]):
        if bound is not None:
            assert error <= bound, (task, errors, PARITY[task])


# ---------------------------------------------------------------- fused loop

TINY = dict(num_envs=2, model_size=1, latent_dim=16, mlp_dim=32, enc_dim=32, num_q=2, num_samples=8,
            num_elites=2, num_pi_trajs=2, iterations=1, horizon=1, batch_size=4, seed_steps=4,
            episode_length=8, buffer_size=200, total_timesteps=400, eval_episodes=1)


@pytest.mark.parametrize(
    "task", [t if t == "pendulum-spin" else pytest.param(t, marks=pytest.mark.slow) for t in sorted(OUR_TASKS)]
)
def test_runs_in_fused_loop(task):
    """Compiling the fused loop takes ~2 min per task here: one task by default, all with -m slow."""
    from anakin_tdmpc.config import Args
    from anakin_tdmpc.run import build

    env, _, loop, _ = build(Args(task=task, **TINY))
    carry, stats = loop.chunk(loop.init(jax.random.key(0)), jnp.int32(3))
    stats = jax.device_get(stats)
    assert np.all(np.isfinite(jax.device_get(carry.env_state.obs)))
    assert env.name == task
