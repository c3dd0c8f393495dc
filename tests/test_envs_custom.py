"""Our own MJX ports (anakin_tdmpc/envs/dmc/tdmpc2.py, quadruped.py): names, specs, parity with dm_control,
and one tiny chunk of the fused training loop.

Parity: from our env's initial state (copied into dm_control's physics) and one random action
sequence, 100 control steps of our env are compared with dm_control's. Custom TD-MPC2 tasks run on
dm_control's *base* task (walker-walk, cheetah-run, hopper-hop, pendulum-swingup, ball_in_cup-catch;
the three-link reacher, which dm_control lacks, on our very MJCF in MuJoCo) and their reward is recomputed in
numpy from the official formula. Two references, two ways (see :func:`parity_errors`):

* ``matched``: dm_control with our solver options (iterations, timestep, flags; for quadruped/dog our contact
  filter). What is left is MJX vs MuJoCo C and our obs/reward code vs dm_control's: the port itself.
* ``stock``: dm_control as shipped; looser, by what the changed solver settings cost (stated per task).
* ``free``: both run freely; ``resync``: before every step dm_control's state (solver warm start included)
  is reset to ours, so each step's obs, reward and dynamics are checked on their own.

Compiling MJX physics on 2 CPU cores takes 10-40 s per task, so the default suite runs a cheap
representative subset; ``-m slow`` runs every task.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from envcheck import check_parity, run_one_chunk

from anakin_tdmpc.envs import OUR_TASKS, TASK_SOURCES, canonical_task_name, make_env

"""dm_control's own tasks corrected on playground's models (envs/dmc/suite.py): compared with dm_control's task itself."""
FAST = {"pendulum-spin", "pendulum-swingup", "reacher-three-easy", "cup-spin", "cartpole-balance"}
HERE = sorted(t for t in OUR_TASKS if OUR_TASKS[t] != "dog")
"""Tasks tested here; the dog (minutes of compile per task) has tests/test_envs_dog.py."""


def _params(tasks):
    return [t if t in FAST else pytest.param(t, marks=pytest.mark.slow) for t in tasks]


# --------------------------------------------------------------------- names


def test_new_tasks_are_registered_with_their_source():
    from anakin_tdmpc.envs.brax_tasks import BRAX_TASKS

    assert set(TASK_SOURCES) == set(OUR_TASKS) | set(BRAX_TASKS) and len(OUR_TASKS) == 42
    assert {TASK_SOURCES[t] for t in OUR_TASKS} == {"ours"}
    assert {TASK_SOURCES[t] for t in BRAX_TASKS} == {"brax"}
    for task in OUR_TASKS:
        assert canonical_task_name(task) == task
        assert canonical_task_name(f"dm_control/{task}-v0") == task
    assert canonical_task_name("Cheetah_Run_Backwards") == "cheetah-run-backwards"
    assert canonical_task_name("dm_control/quadruped-walk-v0") == "quadruped-walk"


EXPECTED_SPECS = {
    "walker-stand": (24, 6), "walker-walk": (24, 6), "walker-run": (24, 6), "pendulum-swingup": (3, 1),
    "walker-walk-backwards": (24, 6), "walker-run-backwards": (24, 6), "cheetah-run-backwards": (17, 6),
    "cheetah-run-front": (17, 6), "cheetah-run-back": (17, 6), "cheetah-jump": (17, 6),
    "hopper-hop-backwards": (15, 4), "reacher-three-easy": (8, 3), "reacher-three-hard": (8, 3),
    "cup-spin": (8, 2), "pendulum-spin": (3, 1), "quadruped-walk": (78, 12), "quadruped-run": (78, 12),
    "cheetah-run": (17, 6), "cartpole-balance": (5, 1), "cartpole-balance-sparse": (5, 1),
    "cartpole-swingup": (5, 1), "cartpole-swingup-sparse": (5, 1), "cup-catch": (8, 2),
    "acrobot-swingup": (6, 1), "acrobot-swingup-sparse": (6, 1), "point_mass-easy": (4, 2),
    "reacher-easy": (6, 2), "reacher-hard": (6, 2), "hopper-stand": (15, 4), "hopper-hop": (15, 4),
    "swimmer-swimmer6": (25, 5), "finger-spin": (9, 2), "finger-turn-easy": (12, 2), "finger-turn-hard": (12, 2),
    "fish-swim": (24, 5), "humanoid-stand": (67, 21), "humanoid-walk": (67, 21), "humanoid-run": (67, 21),
}


def test_expected_specs_cover_every_new_task():
    assert set(EXPECTED_SPECS) == set(HERE)


@pytest.mark.parametrize("task", _params(HERE))
def test_spec(task):
    env = make_env(task)
    assert (env.obs_dim, env.action_dim) == EXPECTED_SPECS[task]
    assert env.name == task and env.episode_length == 500


# -------------------------------------------------------------------- parity


F32 = 1e-3
"""Same model and solver options in MJX (float32) and MuJoCo C (float64): measured <= 1e-4 on obs and reward over
100 steps, free-running included (quadruped: 4e-3 free, 6e-4 resynced), so 1e-3 (quadruped free: 0.02) fails on
any real difference in the observation or reward code or in the physics."""

_CHEETAH = (F32, F32, F32, F32, F32, F32)  # 4 solver iterations (dm_control 100) and implicit damping: measured
# 1e-4 free, 0 resynced, matched and as shipped alike (with eulerdamp off, as playground: joint velocities 2.50)
# hopper (our dm_control hopper, envs/dmc/suite.py, and hopper-hop-backwards on it): every geom pair collides, as in
# dm_control (playground's caps dropped the limbs' contacts with each other: one-step velocities then differed by
# up to 4.2), implicit damping, 10 solver iterations (dm_control 100; at playground's 4: 0.32 as shipped).
# Measured 2e-4 resynced, matched and as shipped alike; free runs part after the contacts (0.087). The reward is
# 0 throughout under random actions (the hopper falls from its random initial pose), so its bound checks little
# here; test_hopper_rewards_a_standing_hopper_as_dm_control does.
_HOPPER = (0.2, F32, F32, F32, F32, F32)
# walker (our dm_control walker, envs/dmc/suite.py, and the backwards tasks on it): 10 solver iterations (dm_control
# 100), implicit damping, no collision caps: resynced one-step errors 1e-4, matched and as shipped alike; free
# runs part for good after foot contacts. (Playground's cap of 4 contacts dropped a fifth at step 48 of this
# rollout: 0.75 there; at its 2 iterations 4.55.)
_WALKER = (None, None, F32, F32, F32, F32)
_QUADRUPED = (0.02, F32, 5 * F32, F32, 8.0, 0.005)  # stock: 4 solver iterations vs 100 and contacts of the toes,
# shins, thighs and torso only: one-step velocities differ by up to 5.7 (measured 5.71, reward 3e-4)

_CARTPOLE = (F32, F32, F32, F32, F32, F32)  # RK4 and dm_control's timestep; no contacts, so the solver's
# iterations do not matter
_CUP = (F32, F32, F32, F32, 0.35, 0.015)  # as cup-spin: stock, 1 solver iteration vs 100 on the string and cup
# contacts (measured 0.134, reward 0)

# finger: dm_control's timestep, integrator and elliptic cone; 10 solver iterations (dm_control 200) and
# playground's inert decorations (no collision caps). With the actions pushing the finger onto the spinner
# (envcheck.ACTION_BIAS: contact in ~30 of 100 steps, the spinner spun up to ~13 rad/s) measured 0.004 free,
# 0.0008 resynced, matched and as shipped alike; pyramidal cones instead: 1.95 as shipped. Turn (other initial
# states): as shipped 0.0006; matched, MuJoCo C itself at 10 iterations leaves the spinner's friction loss
# unconverged in one step (hinge velocity off by 0.0496 from MJX's, which matches dm_control's at 200).
_FINGER = (0.01, F32, 2 * F32, F32, 2 * F32, F32)
_FINGER_TURN = (0.1, F32, 0.1, F32, 2 * F32, F32)
# humanoid: every geom pair collides (playground's caps at 8: more than 10 one-step while it lies on the floor), 10 solver
# iterations (dm_control 100) and implicit damping: resynced 0.32 matched and as shipped alike (measured 0.3203;
# 0.3176 at dm_control's 100 / 50: MJX vs MuJoCo C with ~20 contacts); free runs part for good. The reward is 0
# throughout (the humanoid falls from its random pose), as for hopper.
_HUMANOID = (None, None, 0.5, F32, 0.5, F32)
_ACROBOT = (F32, F32, F32, F32, F32, F32)  # RK4 and dm_control's timestep; no contacts
_POINT_MASS = (F32, F32, F32, F32, F32, F32)  # the same model and timestep
_REACHER = (F32, F32, F32, F32, F32, F32)  # two and three links: dm_control's timestep, eulerdamp and solver; no contacts

PARITY: dict[str, tuple] = {
    # task: (matched free obs, matched free reward, matched resync obs, matched resync reward,
    #        stock resync obs, stock resync reward); None: not compared
    "pendulum-spin": (F32, F32, F32, F32, 0.03, 0.005),  # stock: one 0.02 s step, eulerdamp on, vs 2 x 0.01 s:
    # angular velocity off by up to 0.015 (measured 0.0153, reward 0.0017)
    "reacher-three-easy": _REACHER,
    "reacher-three-hard": _REACHER,
    "cup-spin": (F32, F32, F32, F32, 0.25, 0.015),  # stock: 1 solver iteration vs 100 on the taut string and cup
    # contacts: ball velocity jumps differ by up to 0.13 (measured 0.125, reward 0.0095)
    "cheetah-run-backwards": _CHEETAH,
    "cheetah-run-front": _CHEETAH,
    "cheetah-run-back": _CHEETAH,
    "cheetah-jump": _CHEETAH,
    "pendulum-swingup": (F32, F32, F32, F32, F32, F32),  # dm_control's timestep and eulerdamp, no contacts
    "walker-stand": _WALKER,
    "walker-walk": _WALKER,
    "walker-run": _WALKER,
    "walker-walk-backwards": _WALKER,
    "walker-run-backwards": _WALKER,
    "hopper-hop-backwards": _HOPPER,
    "quadruped-walk": _QUADRUPED,
    "quadruped-run": _QUADRUPED,
    "cheetah-run": _CHEETAH,
    "cartpole-balance": _CARTPOLE,
    "cartpole-balance-sparse": _CARTPOLE,
    "cartpole-swingup": _CARTPOLE,
    "cartpole-swingup-sparse": _CARTPOLE,
    "cup-catch": _CUP,
    "acrobot-swingup": _ACROBOT,
    "acrobot-swingup-sparse": _ACROBOT,
    "point_mass-easy": _POINT_MASS,
    "reacher-easy": _REACHER,
    "reacher-hard": _REACHER,
    "hopper-stand": _HOPPER,
    "hopper-hop": _HOPPER,
    "swimmer-swimmer6": (F32, F32, F32, F32, F32, F32),  # dm_control's timestep; no contacts (measured 5e-5)
    "fish-swim": (F32, F32, F32, F32, F32, F32),  # dm_control's timestep and torso box; no constraints (1e-5)
    "humanoid-stand": _HUMANOID,
    "humanoid-walk": _HUMANOID,
    "humanoid-run": _HUMANOID,
    "finger-spin": _FINGER,
    "finger-turn-easy": _FINGER_TURN,
    "finger-turn-hard": _FINGER_TURN,
}
"""task -> max abs error bounds, in :func:`parity_errors`' order, each with the reason for its size."""


# The solver iterations our ports keep below dm_control's (each with its parity bound above); every other
# numerical setting of the MuJoCo model is dm_control's.
FEWER_ITERATIONS = {"walker": (10, 8), "cheetah": (4, 8), "cartpole": (1, 4), "ball_in_cup": (1, 4),
                    "acrobot": (2, 4), "point_mass": (1, 4), "hopper": (10, 8), "swimmer": (4, 8), "fish": (2, 6),
                    "humanoid": (10, 8), "finger": (10, 8), "pendulum": (4, 8), "reacher": (100, 50),
                    "quadruped": (4, 8)}
SAMPLE = ["walker-walk", "cheetah-run", "cartpole-swingup", "cup-catch", "acrobot-swingup", "point_mass-easy",
          "hopper-hop", "swimmer-swimmer6", "fish-swim", "humanoid-run", "finger-spin", "pendulum-swingup",
          "reacher-hard", "quadruped-walk", "walker-run-backwards", "cup-spin", "hopper-hop-backwards",
          "cheetah-jump"]


def test_numerical_settings_are_dm_controls_but_the_solver_iterations():
    """Timestep, integrator, friction cone, solver, tolerances and flags (implicit joint damping, `eulerdamp`,
    included: playground's models disable it) of one task per domain and of the custom tasks' bases equal
    dm_control's model. Two flags apart: swimmer has no joint damping, so implicit damping changes nothing there
    and stays off (MJX would pay for it every step); fish keeps playground's contacts-off flag, moot since both
    disable every constraint. MJX collides as MuJoCo: none of playground's caps on geom pairs and contact points
    (the `max_geom_pairs` / `max_contact_points` numerics) is left."""
    import mujoco
    from dm_control import suite

    from anakin_tdmpc.envs.registry import _load_our_env

    eulerdamp = int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
    fields = ("timestep", "integrator", "cone", "solver", "tolerance", "ls_tolerance", "impratio", "jacobian",
              "gravity", "wind", "density", "viscosity", "disableflags")
    for task in SAMPLE:
        domain = {"cup": "ball_in_cup"}.get(task.split("-")[0], task.split("-")[0])
        first = next(name for d, name in suite.ALL_TASKS if d == domain)  # a domain's tasks share its model
        ref = suite.load(domain, first, task_kwargs={"random": 0}).physics.model.opt
        ours = _load_our_env(task).mj_model.opt
        for field in fields:
            theirs = getattr(ref, field)
            if field == "disableflags" and domain == "swimmer":
                theirs |= eulerdamp
            if field == "disableflags" and domain == "fish":  # playground's contact flag: moot, as both models
                assert theirs & int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)  # disable every constraint
                theirs |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
            np.testing.assert_allclose(getattr(ours, field), theirs, err_msg=f"{task}: {field}")
        assert (ours.iterations, ours.ls_iterations) == FEWER_ITERATIONS[domain], task
        model = _load_our_env(task).mj_model
        for cap in ("max_geom_pairs", "max_contact_points"):
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, cap) >= 0:
                assert model.numeric(cap).data[0] == -1, (task, cap)


@pytest.mark.parametrize("task", _params(HERE))
def test_parity_with_dm_control(task):
    check_parity(task, PARITY[task])


# ---------------------------------------------------------------- fused loop


@pytest.mark.parametrize(
    "task", [pytest.param(t, marks=pytest.mark.slow) for t in HERE]
)
def test_runs_in_fused_loop(task):
    """Compiling the fused loop takes ~1-2 min per task here: all with -m slow (by default the learning tests
    and the README example of tests/test_own_env.py run MJX tasks in the fused loop)."""
    run_one_chunk(task)


def test_pendulum_starts_anywhere_on_the_circle():
    """dm_control draws the initial angle uniformly in [-pi, pi] (playground: [0, pi])."""
    for task in ("pendulum-swingup", "pendulum-spin"):
        env = make_env(task)
        state = jax.jit(env.reset, static_argnums=1)(jax.random.key(0), 512)
        angle = np.asarray(state.physics.data.qpos[:, 0])
        assert angle.min() < -3.0 and angle.max() > 3.0 and 0.4 < np.mean(angle < 0) < 0.6, task
        zz = np.asarray(state.obs[:, 0])  # dm_control's order: zz first
        np.testing.assert_allclose(zz, np.cos(angle), atol=1e-5)


def test_cartpole_draws_positions_and_velocities_independently():
    """dm_control draws the initial velocities with their own draws; playground's key reuse made the cart's
    velocity a function of a position (balance: of the pole angle)."""
    for task in ("cartpole-balance", "cartpole-swingup"):
        env = make_env(task)
        data = jax.jit(env.reset, static_argnums=1)(jax.random.key(0), 1024).physics.data
        qpos, qvel = np.asarray(data.qpos), np.asarray(data.qvel)
        assert 0.008 < qvel.std(0).min() < 0.012, task  # 0.01 x N(0, 1)
        for i in range(2):
            for j in range(2):
                assert abs(np.corrcoef(qpos[:, i], qvel[:, j])[0, 1]) < 0.1, (task, i, j)


def test_cup_catch_ball_starts_anywhere_free():
    """dm_control: ball x ~ U(-0.2, 0.2), z ~ U(0.2, 0.5), drawn again while it touches anything."""
    env = make_env("cup-catch")
    data = jax.jit(env.reset, static_argnums=1)(jax.random.key(0), 512).physics.data
    ball = np.asarray(data.qpos[:, -2:])  # ball_x, ball_z (after the cup's x, z)
    assert -0.2 <= ball[:, 0].min() < -0.15 and 0.15 < ball[:, 0].max() <= 0.2
    assert 0.2 <= ball[:, 1].min() < 0.25 and 0.45 < ball[:, 1].max() <= 0.5
    assert (np.asarray(data._impl.contact.dist) >= 0).all()  # noqa: SLF001 - no draw left touching


def test_reacher_first_observation_points_at_the_target():
    """dm_control places the target before computing the kinematics; playground moved it after `mjx.forward`, so
    its first `to_target` pointed at the target's old place (the origin)."""
    env = make_env("reacher-easy").playground_env
    state = jax.jit(env.reset)(jax.random.key(0))
    finger = np.asarray(state.data.geom_xpos[env._finger_geom_id, :2])  # noqa: SLF001
    target = np.asarray(state.data.mocap_pos[env._target_mocap_body_id, :2])  # noqa: SLF001
    assert 0.05 <= np.linalg.norm(target) <= 0.2
    np.testing.assert_allclose(np.asarray(state.obs[2:4]), target - finger, atol=1e-6)


def test_finger_draws_its_joints_independently_and_free_of_contacts():
    """dm_control draws the finger's two joints in their ranges and the spinner in [-pi, pi] independently, again
    until nothing touches; playground drew the spinner with the finger's key (its angle a function of the
    proximal angle) and kept touching draws."""
    env = make_env("finger-spin")
    data = jax.jit(env.reset, static_argnums=1)(jax.random.key(0), 1024).physics.data
    qpos = np.asarray(data.qpos)
    assert abs(np.corrcoef(qpos[:, 0], qpos[:, 2])[0, 1]) < 0.1
    assert qpos[:, 2].min() < -3.0 and qpos[:, 2].max() > 3.0
    assert (np.asarray(data._impl.contact.dist) >= 0).all()  # noqa: SLF001 - no draw left touching


def test_finger_turn_first_observation_sees_the_target():
    """dm_control places the target before computing the kinematics; playground moved it after `mjx.forward`, so
    its first `target_position` and `dist_to_target` read the target's default place."""
    env = make_env("finger-turn-easy").playground_env
    state = jax.jit(env.reset)(jax.random.key(1))
    target = np.asarray(state.data.mocap_pos[env._target_mocap_body_id, [0, 2]])  # noqa: SLF001
    spinner = np.asarray(state.data.xpos[env.mj_model.body("spinner").id, [0, 2]])
    np.testing.assert_allclose(np.asarray(state.obs[9:11]), target - spinner, atol=1e-5)
    assert abs(np.linalg.norm(target - spinner) - env._radius) < 1e-5  # noqa: SLF001 - on the spinner's circle


def test_fish_starts_at_dm_controls_height_seeing_its_target():
    """dm_control's fish starts at the model's 0.1 m with a random orientation and sees its target from the
    first observation; playground's started at z = 0 and observed the target's default place first."""
    env = make_env("fish-swim").playground_env
    state = jax.jit(env.reset)(jax.random.key(2))
    data = state.data
    np.testing.assert_allclose(np.asarray(data.qpos[:3]), [0, 0, 0.1], atol=1e-7)
    target = np.asarray(data.mocap_pos[env._target_mocap_body_id])  # noqa: SLF001
    mouth = np.asarray(data.geom_xpos[env._mouth_geom_id])  # noqa: SLF001
    expected = (target - mouth) @ np.asarray(data.geom_xmat[env._mouth_geom_id])  # noqa: SLF001
    np.testing.assert_allclose(np.asarray(state.obs[8:11]), expected, atol=1e-5)  # after 7 joints and upright
    assert not np.allclose(target, [0, 0.4, 0.1])


def test_swimmer_first_observation_points_at_the_target():
    """dm_control places the target before computing the kinematics; playground moved it after `mjx.forward`, so
    its first `to_target` pointed at the target's default place (1, 1)."""
    env = make_env("swimmer-swimmer6").playground_env
    state = jax.jit(env.reset)(jax.random.key(3))
    data = state.data
    target = np.asarray(data.mocap_pos[env._target_mocap_body_id])  # noqa: SLF001
    assert not np.allclose(target[:2], 1.0) and np.abs(target[:2]).max() <= 2.0
    nose = np.asarray(data.geom_xpos[env._nose_geom_id])  # noqa: SLF001
    head = np.asarray(data.xmat[env._head_body_id])  # noqa: SLF001
    np.testing.assert_allclose(np.asarray(state.obs[5:7]), ((target - nose) @ head)[:2], atol=1e-5)


@pytest.mark.slow
def test_hopper_rewards_a_standing_hopper_as_dm_control():
    """Random actions from a random pose earn hopper 0 (it lies on the floor), so the parity rollout cannot check
    the reward: here both start upright (every joint at 0, the torso at its 1 m) moving forward at 1.5 m/s (hop's
    speed term counts from 1 m/s) and take 10 steps of one action; obs and reward of each step are compared with
    dm_control's, which then are not 0."""
    from mujoco import mjx

    for task, goal in (("hopper-stand", "stand"), ("hopper-hop", "hop")):
        env = make_env(task, action_repeat=1).playground_env
        state = env.reset(jax.random.key(0))
        qvel = np.zeros(env.mjx_model.nv, np.float32)
        qvel[0] = 1.5  # rootx
        data = state.data.replace(qpos=jax.numpy.zeros_like(state.data.qpos), qvel=jax.numpy.asarray(qvel))
        state = state.replace(data=mjx.forward(env.mjx_model, data))
        action = np.array([0.3, -0.2, 0.5, 0.1], np.float32)
        step = jax.jit(env.step)

        from dm_control import suite

        ref = suite.load("hopper", goal, task_kwargs={"random": 0})
        ref.reset()
        with ref.physics.reset_context():
            ref.physics.data.qpos[:] = 0
            ref.physics.data.qvel[:] = qvel
        rewards = []
        for _ in range(10):
            state = step(state, action)
            ts = ref.step(action)
            obs = np.concatenate([np.ravel(v) for v in ts.observation.values()])
            np.testing.assert_allclose(np.asarray(state.obs), obs, atol=0.02)
            assert abs(float(state.reward) - ts.reward) < 0.01, (task, float(state.reward), ts.reward)
            rewards.append(ts.reward)
        assert min(rewards) > 0.1, (task, rewards)  # a reward that the comparison can see


@pytest.mark.slow
def test_humanoid_starts_in_dm_controls_random_pose_free_of_contacts():
    """dm_control: a random root orientation (rand(4) normalised: every component >= 0), each hinge uniform in its
    range, drawn again while anything touches; playground always started upright in one pose."""
    env = make_env("humanoid-walk")
    data = jax.jit(env.reset, static_argnums=1)(jax.random.key(0), 256).physics.data
    qpos = np.asarray(data.qpos)
    model = env.playground_env.mj_model
    np.testing.assert_allclose(qpos[:, :3], np.broadcast_to(model.qpos0[:3], (256, 3)), atol=1e-6)
    quat = qpos[:, 3:7]
    assert quat.min() >= 0 and quat.std(0).min() > 0.1
    np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1, atol=1e-5)
    low, high = model.jnt_range[1:, 0], model.jnt_range[1:, 1]
    assert (qpos[:, 7:] >= low - 1e-6).all() and (qpos[:, 7:] <= high + 1e-6).all()
    assert qpos[:, 7:].std(0).min() > 0.05
    assert (np.asarray(data._impl.contact.dist) >= 0).all()  # noqa: SLF001 - no draw left touching
