"""The protocol an env of your own follows (see `anakin_tdmpc.envs.register`), and its check.

`check_env(name, env)` traces `reset` and `step` abstractly (`jax.eval_shape`: nothing compiles or runs) and
raises `EnvError` with one line naming the first field that breaks the protocol.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax

from anakin_tdmpc.errors import EnvError


def is_positive_int(value: Any) -> bool:
    """An integer >= 1 (numpy's included; not a bool)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def check_env(name: str, env: Any) -> None:
    """EnvError (one line naming the field) unless ``env`` follows the protocol of :func:`register`.
    Traces ``reset`` and ``step`` abstractly (``jax.eval_shape``): nothing is compiled or run."""
    import jax.numpy as jnp

    def fail(message: str):
        raise EnvError(f"task {name!r}: {message}")

    for method in ("reset", "step"):
        if not callable(getattr(env, method, None)):
            fail(f"the env has no {method}() method")
    sizes = {}
    for attr in ("observation_size", "action_size"):
        value = getattr(env, attr, None)
        if not is_positive_int(value):
            fail(f"{attr} must be a positive int (flat vectors), got {value!r}")
        sizes[attr] = int(value)
    dt = getattr(env, "dt", None)
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not dt > 0:
        fail(f"dt (seconds per step) must be a positive number, got {dt!r}")
    if not isinstance(getattr(env, "episodic", False), bool):
        fail(f"episodic must be True or False (done is a termination or not), got {env.episodic!r}")

    def traced(what: str, fn, *args):
        try:
            return jax.eval_shape(fn, *args)
        except Exception as e:  # the user's code
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            fail(f"{what} failed: {type(e).__name__}: {first}")

    def check_fields(what: str, state) -> None:
        expected = {"obs": ((sizes["observation_size"],), "floating"), "reward": ((), "floating"),
                    "done": ((), "bool, integer or floating")}
        for field, (shape, kinds) in expected.items():
            value = getattr(state, field, None)
            if value is None or not hasattr(value, "shape"):
                fail(f"{what} returns a state without the array field {field}")
            ok = jnp.issubdtype(value.dtype, jnp.floating) or (
                field == "done" and (value.dtype == jnp.bool_ or jnp.issubdtype(value.dtype, jnp.integer)))
            if tuple(value.shape) != shape or not ok:
                fail(f"{what} returns {field} as {value.dtype}{list(value.shape)}; expected {kinds} of shape "
                     f"{list(shape)}" + (" (observation_size)" if field == "obs" else ""))

    first = traced("reset(rng)", env.reset, jax.random.key(0))
    check_fields("reset(rng)", first)
    action = jax.ShapeDtypeStruct((sizes["action_size"],), jnp.float32)
    after = traced("step(state, action)", env.step, first, action)
    check_fields("step(state, action)", after)
    if jax.tree.structure(first) != jax.tree.structure(after):
        fail("step(state, action) returns a state of another structure than reset(rng) returns (the loop "
             "carries it: keep every field)")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(first), jax.tree.leaves(after)):
        if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
            fail(f"step(state, action) returns state{jax.tree_util.keystr(path)} as {b.dtype}{list(b.shape)}; "
                 f"reset(rng) as {a.dtype}{list(a.shape)} (the loop carries the state: keep shapes and dtypes)")
    if getattr(env, "mj_model", None) is not None and not hasattr(getattr(first, "data", None), "qpos"):
        fail("the env has an mj_model but its state has no data.qpos (the mjx.Data the model renders)")
