"""Our MJX ports of DeepMind Control tasks, all on one base (:class:`~anakin_tdmpc.envs.dmc.task.DmcTask`).

* ``task.py``: the base: step then observe, initial-state helpers, model and physics options;
* ``physics.py``: physics helpers (MuJoCo options, kinematics after a step, contacts);
* ``suite.py``: dm_control's suite tasks on mujoco_playground's models, corrected to dm_control's MDP;
* ``tdmpc2.py``: TD-MPC2's extra tasks (on the suite's ports, and a three-link reacher);
* ``quadruped.py``, ``dog.py``: dm_control's quadruped and dog on dm_control's own models.

Which class makes which task is ``anakin_tdmpc.envs.registry.TASKS``.
"""
