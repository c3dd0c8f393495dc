"""One optimiser step of a loss, shared by the algorithms: gradient, mean over the data-parallel devices,
optax update, new parameters.

    loss, params, opt_state, grad_norm = gradients.step(loss_fn, optimizer, params, opt_state, *args,
                                                        axis_name=..., has_aux=...)

Data-parallel training (loop/parallel.py) gives every device its own share of the batch; averaging the
gradients over the device axis before the optimiser sees them makes every device apply the same step, so the
parameters stay identical on all of them.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import optax


def device_mean(tree, axis_name: Optional[str]):
    """Mean of `tree` over the data-parallel device axis `axis_name` (identity when None: one device).

    Gradients go through it in `step`; an algorithm also averages batch statistics with it (TD-MPC2's Q scale)
    so that every device computes the same number."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


class Step(NamedTuple):
    loss: Any  # what value_and_grad returns as the value: the loss, or (loss, aux) with has_aux
    params: Any  # the parameters after the step
    opt_state: Any  # the optimiser's state after the step
    grad_norm: jax.Array  # global norm of the device-averaged gradient (before any clipping in `optimizer`)


def step(loss_fn: Callable, optimizer: optax.GradientTransformation, params, opt_state, *args,
         axis_name: Optional[str] = None, has_aux: bool = False) -> Step:
    """One step of `optimizer` on `loss_fn(params, *args)`, differentiated with respect to `params` only.

    The gradient is averaged over `axis_name` (see `device_mean`) before the optimiser's update, which sees the
    old parameters (as clipping and Adam may)."""
    loss, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, *args)
    grads = device_mean(grads, axis_name)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return Step(loss, params, opt_state, optax.tree.norm(grads))
