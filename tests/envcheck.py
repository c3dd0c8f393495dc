"""Parity of our envs with dm_control's tasks, and one tiny fused-loop chunk per task: the machinery that
test_envs_custom.py and test_envs_dog.py share (their bounds stay with them).

Parity: from our env's initial state (copied into dm_control's physics) and one random action sequence, 100
control steps of our env are compared with dm_control's, in two references and two ways (see
:func:`parity_errors`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from anakin_tdmpc.envs import OUR_TASKS, make_env

NUM_STEPS = 100
SUITE_TASKS = {t for t, module in OUR_TASKS.items() if module == "suite"}  # dm_control's tasks on our models

ACTION_BIAS = {"finger": (1.0, 0.0)}
"""Domain -> the centre of its random actions (half-width 0.5, clipped to [-1, 1]); others: uniform in [-1, 1].
Under uniform actions the finger seldom reaches the spinner (no contact in 100 steps of seed 0); pushing the
proximal joint towards it makes contact in ~30 of the 100 steps and spins the spinner, so contacts are tested."""

MATCHED_OPTIONS = ("timestep", "iterations", "ls_iterations", "noslip_iterations", "disableflags", "enableflags",
                   "solver", "cone", "integrator", "tolerance", "ls_tolerance")


def _match(physics, ours):
    """Gives dm_control's ``physics`` the solver options (and collision filter) of our env; returns sub-steps.

    What then remains between the two is MJX (float32) vs MuJoCo C (float64), plus our observation and
    reward code vs dm_control's: the part of the port under test.
    """
    mine = ours.mj_model
    for name in MATCHED_OPTIONS:
        setattr(physics.model.opt, name, getattr(mine.opt, name))
    if physics.model.ngeom == mine.ngeom:
        physics.model.geom_contype[:] = mine.geom_contype
        physics.model.geom_conaffinity[:] = mine.geom_conaffinity
    return int(ours.n_substeps)


def _reference(task, ours=None):
    """(physics, step(action) -> (obs, reward)) of dm_control's task ``task``.

    With ``ours`` (our env), dm_control's physics gets our solver settings first (see :func:`_match`).
    """
    from dm_control import suite
    from dm_control.utils import rewards

    inf = float("inf")
    tol = rewards.tolerance
    domain, base = {
        "walker": ("walker", "walk"), "cheetah": ("cheetah", "run"), "hopper": ("hopper", "hop"),
        "pendulum": ("pendulum", "swingup"), "cup": ("ball_in_cup", "catch"), "quadruped": ("quadruped", None),
        "dog": ("dog", None), "cartpole": ("cartpole", None), "acrobot": ("acrobot", None),
        "point_mass": ("point_mass", None), "reacher": ("reacher", None),
        "swimmer": ("swimmer", None), "finger": ("finger", None),
        "fish": ("fish", None), "humanoid": ("humanoid", None),
    }.get(task.split("-")[0], (None, None))

    if task.startswith("reacher-three"):
        from dm_control import mujoco as dm_mujoco
        from dm_control.suite import common

        from anakin_tdmpc.envs.dmc.tdmpc2 import reacher_three_xml

        size = 0.05 if task.endswith("easy") else 0.015
        # No dm_control task to compare with: MuJoCo (C) on our MJCF with dm_control's reacher settings
        # (0.02 s steps, eulerdamp on), or with ours when matched.
        physics = dm_mujoco.Physics.from_xml_string(reacher_three_xml(size), common.ASSETS)
        substeps = [1]
        if ours is not None:
            substeps[0] = _match(physics, ours)

        def to_target():
            return physics.named.data.geom_xpos["target", :2] - physics.named.data.geom_xpos["finger", :2]

        def step(action):
            physics.set_control(action)
            for _ in range(substeps[0]):
                physics.step()
            obs = np.concatenate([physics.data.qpos, to_target(), physics.data.qvel])
            radii = size + physics.named.model.geom_size["finger", 0]
            return obs, tol(np.linalg.norm(to_target()), (0, radii))

        return physics, step

    if task in SUITE_TASKS:  # dm_control's own task: its own reward
        base = task.split("-", 1)[1].replace("-", "_")
    env = suite.load(domain, base or task.split("-")[1], task_kwargs={"random": 0})
    env.reset()
    p = env.physics
    if ours is not None:
        env._n_sub_steps = _match(p, ours)  # noqa: SLF001 - dm_control keeps the sub-step count private
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
        "hopper-hop-backwards": lambda: tol(nd.xipos["torso", "z"] - nd.xipos["foot", "z"], (0.6, 2))
        * tol(speed(), (-inf, -1), margin=0.5, value_at_margin=0.5, sigmoid="linear"),
        "pendulum-spin": lambda: tol(abs(nd.qvel["hinge"][0]), (9, inf), margin=4.5, value_at_margin=0.5, sigmoid="linear"),
        "cup-spin": cup_spin,
    }.get(task)

    def step(action):
        ts = env.step(action)
        obs = np.concatenate([np.ravel(v) for v in ts.observation.values()])
        return obs, (ts.reward if custom_reward is None else custom_reward())

    return p, step


def _sync(physics, qpos, qvel, act, mocap_pos, warmstart):
    """Sets dm_control's state to ours, solver warm start included (it matters at 1-4 solver iterations)."""
    with physics.reset_context():
        physics.data.qpos[:] = qpos
        physics.data.qvel[:] = qvel
        physics.data.qacc_warmstart[:] = warmstart
        if physics.model.na:
            physics.data.act[:] = act
        if physics.model.nmocap:
            physics.data.mocap_pos[:] = mocap_pos
        elif len(mocap_pos):  # dm_control's target is a world geom (reacher, swimmer, fish) or site (finger),
            # moved in the model
            model = physics.named.model
            (model.geom_pos if "target" in model.geom_pos.axes.row.names else model.site_pos)["target"] = mocap_pos[0]


def _rollout(task, seed=0):
    """Our env: reset + 100 random-action steps in one jitted program -> numpy (init, states, obs, rewards, actions)."""
    wrapped = make_env(task, action_repeat=1)
    env = wrapped.playground_env

    @wrapped.jit
    def run(key):
        reset_key, action_key = jax.random.split(key)
        state = env.reset(reset_key)
        actions = jax.random.uniform(action_key, (NUM_STEPS, env.action_size), minval=-1, maxval=1)
        if task.split("-")[0] in ACTION_BIAS:
            actions = jnp.clip(jnp.asarray(ACTION_BIAS[task.split("-")[0]]) + 0.5 * actions, -1, 1)

        def body(state, action):
            state = env.step(state, action)
            d = state.data
            return state, (d.qpos, d.qvel, d.act, d.mocap_pos, d.qacc_warmstart, state.obs, state.reward)

        d = state.data
        _, trace = jax.lax.scan(body, state, actions)
        return (d.qpos, d.qvel, d.act, d.mocap_pos, d.qacc_warmstart), trace, actions

    return jax.device_get(run(jax.random.PRNGKey(seed)))


def parity_errors(task):
    """Max abs errors over the rollout, in :data:`PARITY`'s order.

    *matched*: dm_control's task on dm_control's model, given our solver options (see :func:`_match`);
    *stock*: dm_control exactly as shipped. *free*: both simulators run freely from the same initial state;
    *resync*: before every step dm_control's state is reset to ours (one-step dynamics, obs and reward).
    """
    init, (*state, obs, reward), actions = _rollout(task)
    actions = np.asarray(actions, np.float64)
    ours = make_env(task, action_repeat=1).playground_env
    references = [_reference(task, ours), _reference(task, ours), _reference(task)]
    start = [np.asarray(x, np.float64) for x in init]
    _sync(references[0][0], *start)
    errors = np.zeros(6)
    previous = start
    for t in range(NUM_STEPS):
        found = []
        for k, (physics, step) in enumerate(references):
            if k > 0:
                _sync(physics, *previous)
            ref_obs, ref_reward = step(actions[t])
            found += [np.abs(ref_obs - obs[t]).max(), abs(ref_reward - reward[t])]
        errors = np.maximum(errors, found)
        previous = [np.asarray(x[t], np.float64) for x in state]
    return errors


def check_parity(task, bounds):
    """Asserts :func:`parity_errors` of ``task`` within ``bounds`` (``None``: not compared)."""
    errors = parity_errors(task)
    print(task, "max abs errors (matched free obs/reward, matched resync obs/reward, stock resync obs/reward):",
          errors.round(4))
    for error, bound in zip(errors, bounds):
        if bound is not None:
            assert error <= bound, (task, errors, bounds)


TINY = dict(num_envs=2, model_size=1, latent_dim=16, mlp_dim=32, enc_dim=32, num_q=2, num_samples=8,
            num_elites=2, num_pi_trajs=2, iterations=1, horizon=1, batch_size=4, seed_steps=4,
            episode_length=8, buffer_size=200, total_timesteps=400, eval_episodes=1)


def run_one_chunk(task):
    """Three fused iterations of a tiny agent on `task`: finite observations, the expected update and episode
    counts."""
    from anakin_tdmpc.build import build
    from anakin_tdmpc.config import Args

    env, _, loop, _ = build(Args(task=task, **TINY))
    carry, stats = loop.chunk(loop.init(jax.random.key(0)), jnp.int32(3))
    stats = jax.device_get(stats)
    assert np.all(np.isfinite(jax.device_get(carry.env_state.obs)))
    # 2 envs: iterations 1-2 seed (4 agent steps), the second ends with the 4 pretraining updates; the third
    # runs utd x N = 2 updates; no episode (8 steps) has ended yet
    assert int(carry.agent_steps) == 6 and int(stats.num_updates) == 4 + 2 and int(stats.episodes) == 0
    assert all(np.isfinite(v) for v in jax.tree.leaves(stats.update_sums))
    assert env.name == task
