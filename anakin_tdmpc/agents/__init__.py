"""The algorithms: the one registry of agent classes (name -> class; see base.py for the contract)."""

from anakin_tdmpc.agents.base import Agent, ConfigError, Prioritization
from anakin_tdmpc.agents.tdmpc import TDMPC
from anakin_tdmpc.agents.tdmpc2 import TDMPC2

AGENTS: dict[str, type] = {"tdmpc2": TDMPC2, "tdmpc": TDMPC}


def agent_class(name: str) -> type:
    """The agent class registered as `name`; ConfigError naming the valid ones otherwise."""
    if name not in AGENTS:
        raise ConfigError(f"unknown algo '{name}'; valid: {', '.join(AGENTS)}")
    return AGENTS[name]


__all__ = ["AGENTS", "Agent", "ConfigError", "Prioritization", "TDMPC", "TDMPC2", "agent_class"]
