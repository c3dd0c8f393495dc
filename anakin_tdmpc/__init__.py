"""TD-MPC and TD-MPC2 trained as one compiled JAX program on MJX DeepMind Control tasks."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("anakin-tdmpc")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
