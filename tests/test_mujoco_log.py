"""A run leaves no MUJOCO_LOG.TXT behind: MuJoCo writes its warnings there, in the working folder, and the only
one a normal run met was the cheetah XML's deprecated `settotalmass` compiler attribute."""

import os

import mujoco
import numpy as np


def test_total_mass_set_after_compiling_equals_the_attribute(tmp_path, monkeypatch):
    from anakin_tdmpc.envs.dmc.physics import compile_total_mass  # first: anakin_tdmpc.envs filters jaxopt's warning
    from mujoco_playground._src.dm_control_suite import cheetah, common

    monkeypatch.chdir(tmp_path)  # the attribute's warning goes to ./MUJOCO_LOG.TXT
    xml, assets = cheetah._XML_PATH.read_text(), common.get_assets()
    assert 'settotalmass="14"' in xml
    expected = mujoco.MjModel.from_xml_string(xml, assets)
    model = compile_total_mass(xml, assets)
    for name in ("body_mass", "body_inertia", "body_subtreemass", "dof_invweight0", "body_invweight0", "qpos0",
                 "dof_M0", "actuator_acc0", "tendon_invweight0"):
        np.testing.assert_array_equal(getattr(model, name), getattr(expected, name), err_msg=name)
    assert abs(float(model.body_subtreemass[0]) - 14.0) < 1e-9


def test_making_the_cheetah_writes_no_mujoco_log(tmp_path, monkeypatch):
    from anakin_tdmpc.envs import make_env

    monkeypatch.chdir(tmp_path)
    make_env("cheetah-run")
    make_env("cheetah-jump")
    assert not os.path.exists(tmp_path / "MUJOCO_LOG.TXT")
