"""The agent registry and contract (agents/), and the overlay of Args onto an agent's Config (config.py)."""

from __future__ import annotations

import dataclasses

import pytest

from anakin_tdmpc import config
from anakin_tdmpc.agents import AGENTS, ConfigError, agent_class
from anakin_tdmpc.config import Args


def test_registry_is_the_one_list_of_algorithms():
    assert list(AGENTS) == ["tdmpc2", "tdmpc"]
    for name, agent in AGENTS.items():
        assert agent.name == name and dataclasses.is_dataclass(agent.Config)
        assert tuple(agent.PRESETS) == config.PRESETS  # every agent defines every preset
        assert agent.PRESETS["paper"] == {}
    with pytest.raises(ConfigError, match="unknown algo 'ppo'; valid: tdmpc2, tdmpc"):
        agent_class("ppo")


@pytest.mark.parametrize("algo", list(AGENTS))
def test_every_shared_flag_reaches_the_agents_config(algo):
    """Each Args field that names a field of the agent's Config sets it: one field in each is all a new
    tunable needs."""
    agent = AGENTS[algo]
    own = {f.name for f in dataclasses.fields(agent.Config)}
    shared = [f for f in dataclasses.fields(Args) if f.name in own]
    assert {f.name for f in shared} >= {"lr", "horizon", "num_samples", "batch_size", "latent_dim"}
    for field in shared:
        default = getattr(config.resolve(Args(algo=algo)).agent_config, field.name)
        value = (not default) if isinstance(default, bool) else default * 2
        if field.name == "num_elites":
            value = 8  # within the samples
        cfg = config.resolve(Args(algo=algo, **{field.name: value})).agent_config
        assert getattr(cfg, field.name) == value, field.name


def test_a_flag_of_the_other_agent_is_refused():
    with pytest.raises(ConfigError, match="--num_q applies to tdmpc2 only"):
        config.resolve(Args(algo="tdmpc", num_q=3)).agent_config
    with pytest.raises(ConfigError, match="--planner_bf16 applies to tdmpc2 only"):
        config.resolve(Args(algo="tdmpc", planner_bf16=False)).agent_config
    config.resolve(Args(algo="tdmpc")).agent_config  # the flags at their defaults are fine


def test_seed_steps_and_action_repeat_come_from_the_agent():
    assert config.default_seed_steps("tdmpc2", 500, 1, 3) == 2500
    assert config.default_seed_steps("tdmpc", 500, 1, 5) == 5000
    assert config.default_seed_steps("tdmpc2", 100, 16, 3) == 1000
    assert config.resolve(Args(algo="tdmpc", task="cartpole-swingup")).action_repeat == 8
    assert config.resolve(Args(task="cartpole-swingup")).action_repeat == 2
