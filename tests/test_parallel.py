"""Data parallel on CPU: 2 forced devices. Multi-device runs need XLA_FLAGS before JAX starts, so they run in
fresh interpreters (tests/parallel_worker.py, or the CLI; helpers in conftest.py)."""


import numpy as np
import pytest

from conftest import worker

from anakin_tdmpc.session.checkpoint import CheckpointError, check_devices

def test_two_devices_stay_identical_and_train_like_one():
    out = worker("devices", 2)
    # every device ends with bitwise identical parameters, checked on device at each chunk and here directly
    assert out["equal_2"] == [True, True, True] and out["identical"]
    assert out["shards"] == [4, 4] and out["buffer_rows"] == 250  # 8 envs / 2 devices, capacity 4000 / 2 / 4
    assert out["round_trip"]
    assert "--num_envs 3 must be divisible by the 2 devices" in out["errors"][0]
    assert "--batch_size 15 must be divisible by the 2 devices" in out["errors"][1]
    # same global batch, different samples: the loss curves agree to within 25% chunk by chunk (measured when
    # written: within 13%), and both fall from the pretraining burst on
    one, two = np.array(out["losses_1"])[:, 0], np.array(out["losses_2"])[:, 0]
    np.testing.assert_allclose(two[1:], one[1:], rtol=0.25)
    assert one[2] < one[1] and two[2] < two[1]
    assert np.all(np.isfinite(out["returns_2"]))


def test_resume_on_another_device_count_is_refused():
    meta = {"config": {"parallel": {"devices": 2}}}
    check_devices(meta, 2, "here")
    with pytest.raises(CheckpointError, match="written by a 2-device run and this run has 1 device"):
        check_devices(meta, 1, "here")
