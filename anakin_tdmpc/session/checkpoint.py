"""Checkpoints of the whole training state, for an exact `--resume`.

A checkpoint is `<run_dir>/checkpoints/<env_steps>/`, written by orbax's `CheckpointManager` (which writes
into a temporary folder and renames it when complete, so a save killed half-way never looks like a
checkpoint; the last `--keep_checkpoints` are kept). It holds two items:

  arrays   every leaf of the `loop.fused.Carry` (agent parameters, target Qs, optimiser states, running scale,
           replay buffer, env states, planner warm starts, rng, counters) in `jax.tree` order, as numpy
           arrays. Typed PRNG keys are stored as their raw `key_data` and re-wrapped on restore;
           zero-size leaves (MJX keeps many, e.g. an empty contact list) are not stored (orbax refuses
           them) and are rebuilt from their recorded shape.
  meta     JSON: the run loop's host state (iterations done, next evaluation step, last eval return,
           training time so far, wandb run id), the run's config, a manifest of every leaf (path,
           shape, dtype, key impl) and a sha256 of all the array bytes.

Restoring checks the manifest against the carry the current code builds and the sha256 against the
restored bytes, so a checkpoint from other code or a damaged one is refused with a one-line reason
(`CheckpointError`) instead of resuming wrongly. Same machine + restored carry + restored host state =
the same remaining computation, so a resumed run writes the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import sys
import time
from typing import NamedTuple, Optional

import jax
import numpy as np

from anakin_tdmpc.config import RUN_MANAGEMENT_FLAGS, upgrade_saved_args
from anakin_tdmpc.errors import CheckpointError

FORMAT = 2  # 2: leaves carry leading [devices, seeds] axes (loop.parallel.Parallel.saved_view)
DIRNAME = "checkpoints"


def one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quietly(call):
    """Run an orbax save or restore -> (result, None) or (None, one-line reason).

    When a save or restore fails (a full disk, a damaged checkpoint), orbax closes its event loop while sibling
    writes or reads are still in flight; as they finish, tensorstore's threads print 'RuntimeError: Event loop
    is closed' tracebacks; and while it runs, orbax's worker threads log each failed write (absl ERROR lines
    with their tracebacks). Those logs are held back during the call (the reason comes back as one line), and
    after a failure stderr is held (and the failed tasks collected) until the threads have stopped (no output
    for 0.5 s, at most 10 s), so the failure stays one line.
    """
    import logging

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)
    try:
        return call(), None
    except Exception as e:  # noqa: BLE001 - any failure means an unusable checkpoint
        reason = one_line(e)
    finally:
        absl_logger.setLevel(level)
    real, sys.stderr = sys.stderr, io.StringIO()
    try:
        quiet_since, start, size = time.time(), time.time(), 0
        while time.time() - quiet_since < 0.5 and time.time() - start < 10:
            time.sleep(0.05)
            gc.collect()  # the failed tasks, so asyncio's 'Task exception was never retrieved' is said now
            if sys.stderr.tell() != size:
                size, quiet_since = sys.stderr.tell(), time.time()
    finally:
        sys.stderr = real
    return None, reason


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def manifest_of(tree) -> list[dict]:
    """Path, stored shape / dtype and key impl of every leaf of a (concrete or abstract) carry."""
    entries = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if _is_key(leaf):
            impl = leaf.dtype._impl.name  # e.g. threefry2x32 (jax.random.key_impl needs a concrete array)
            data = jax.eval_shape(jax.random.key_data, leaf)
            shape, dtype = data.shape, data.dtype
        else:
            impl, shape, dtype = None, leaf.shape, leaf.dtype
        entries.append({"path": jax.tree_util.keystr(path), "shape": list(shape), "dtype": str(np.dtype(dtype)),
                        "key": impl})
    return entries


def _fetch(x) -> np.ndarray:
    """A whole array on this host, also when other processes hold some of its shards."""
    if getattr(x, "is_fully_addressable", True) or getattr(x, "is_fully_replicated", False):
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def to_host(carry) -> list[np.ndarray]:
    """Every leaf of the carry as a numpy array (keys as raw key data), in tree order."""
    return [_fetch(jax.random.key_data(x) if _is_key(x) else x) for x in jax.tree_util.tree_leaves(carry)]


def _digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).view(np.uint8).data if a.size else b"")
    return h.hexdigest()


def _clean_json(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def config_differences(saved_args: dict, args: dict, defaults: Optional[dict] = None) -> list[str]:
    """Flags that differ between a saved run and this command (run-management flags excluded).

    A flag the saved run does not know (added by a later version of this code) is no difference when this
    command leaves it at its default (`defaults`, the flags' defaults: a new flag's default keeps the old
    behaviour). A flag the saved run has and this code does not (since removed) always differs."""
    defaults = {} if defaults is None else defaults
    diffs = []
    for name in sorted(set(saved_args) | set(args)):
        if name in RUN_MANAGEMENT_FLAGS:
            continue
        if name not in saved_args and name in defaults and args.get(name) == defaults[name]:
            continue
        old, new = saved_args.get(name, "<absent>"), args.get(name, "<absent>")
        if name not in args:
            diffs.append(f"--{name} {old} (saved) is not a flag of this version")
        elif name not in saved_args:
            diffs.append(f"--{name} {new} is new since the run was written (its default {defaults.get(name)} "
                         "keeps the run's behaviour)")
        elif old != new:
            diffs.append(f"--{name} {old} (saved) != {new}")
    return diffs


class Checkpointer:
    """Save / restore the carry + host state of one run dir (orbax CheckpointManager, synchronous saves)."""

    def __init__(self, run_dir: str, keep: int = 3, create: bool = True):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(os.path.join(run_dir, DIRNAME))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=create, enable_async_checkpointing=False, cleanup_tmp_directories=True
            ),
        )

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, carry, host: dict, config: dict) -> str:
        """Write checkpoint `step` (env steps) from a carry that has not been donated yet."""
        meta = {"format": FORMAT, "step": int(step), "host": _clean_json(host), "config": config,
                "manifest": manifest_of(carry)}
        return self.write_raw(step, to_host(carry), meta)

    def write_raw(self, step: int, arrays: list[np.ndarray], meta: dict) -> str:
        """Write checkpoint `step` from host arrays in manifest order (as `read_arrays` returns them) and
        its meta (the sha256 is recomputed). `save` uses it; so can tools that edit a checkpoint."""
        ocp = self._ocp
        meta = dict(meta, sha256=_digest(arrays))
        if int(step) in self.manager.all_steps():  # only when rewriting an existing checkpoint
            self.manager.delete(int(step))
        stored = {f"leaf_{i:05d}": a for i, a in enumerate(arrays) if a.size}

        def save():
            self.manager.save(
                int(step),
                args=ocp.args.Composite(arrays=ocp.args.StandardSave(stored), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self.manager.wait_until_finished()

        _, error = _quietly(save)
        if error is not None:
            raise CheckpointError(error)
        return self.path(step)

    def read_meta(self, step: int) -> dict:
        """The JSON part of checkpoint `step` (cheap: no arrays are read)."""
        ocp = self._ocp
        restored, error = _quietly(
            lambda: self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())))
        if error is not None:
            raise CheckpointError(f"checkpoint {self.path(step)} is unreadable ({error})")
        meta = restored["meta"]
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "manifest" not in meta:
            raise CheckpointError(f"checkpoint {self.path(step)} is not an anakin_tdmpc checkpoint (format {FORMAT})")
        return meta

    def read_arrays(self, step: int, meta: dict) -> list[np.ndarray]:
        """The stored leaves of checkpoint `step` as numpy arrays (zero-size leaves rebuilt), hash-checked."""
        ocp = self._ocp
        where = self.path(step)
        restored, error = _quietly(
            lambda: self.manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore())))
        if error is not None:
            raise CheckpointError(f"checkpoint {where} is unreadable ({error})")
        stored = restored["arrays"]
        arrays = []
        for i, entry in enumerate(meta["manifest"]):
            shape, dtype = tuple(entry["shape"]), np.dtype(entry["dtype"])
            if 0 in shape:
                arrays.append(np.zeros(shape, dtype))
                continue
            a = stored.get(f"leaf_{i:05d}") if isinstance(stored, dict) else None
            if a is None or tuple(np.shape(a)) != shape or np.asarray(a).dtype != dtype:
                raise CheckpointError(f"checkpoint {where} is damaged: leaf {entry['path']} is missing or reshaped")
            arrays.append(np.asarray(a))
        if _digest(arrays) != meta.get("sha256"):
            raise CheckpointError(f"checkpoint {where} is damaged: its arrays do not match the saved sha256")
        return arrays

    def restore(self, step: int, abstract_carry, meta: Optional[dict] = None, place=None):
        """Rebuild the carry of checkpoint `step`, shaped like `abstract_carry` (`jax.eval_shape` of init).

        `place` maps the tree of host arrays (keys as key data) to device arrays (default: the default
        device). Returns (carry, meta). Raises CheckpointError on any mismatch or damage.
        """
        meta = meta if meta is not None else self.read_meta(step)
        expected = manifest_of(abstract_carry)
        if meta["manifest"] != expected:
            first = next(
                (f"{a['path']} {a['shape']} {a['dtype']} (saved) vs {b['path']} {b['shape']} {b['dtype']}"
                 for a, b in zip(meta["manifest"], expected) if a != b),
                f"{len(meta['manifest'])} leaves (saved) vs {len(expected)}",
            )
            raise CheckpointError(
                f"checkpoint {self.path(step)} does not fit this code's training state: {first}"
            )
        arrays = self.read_arrays(step, meta)
        leaves, treedef = jax.tree_util.tree_flatten(abstract_carry)
        placed = (place or jax.device_put)(jax.tree_util.tree_unflatten(treedef, arrays))
        restored = [jax.random.wrap_key_data(x, impl=leaf.dtype._impl.name) if _is_key(leaf) else x
                    for leaf, x in zip(leaves, jax.tree_util.tree_leaves(placed))]
        return jax.tree_util.tree_unflatten(treedef, restored), meta

    def close(self) -> None:
        self.manager.close()


class ResumePoint(NamedTuple):
    step: Optional[int]  # env steps of the latest checkpoint; None: the run has none yet (start it over)
    meta: Optional[dict]


def find_resume_point(run_dir: str, args: dict, keep: int, defaults: Optional[dict] = None) -> Optional[ResumePoint]:
    """What `--resume` continues in `run_dir`: None when there is no run there yet (a new run starts).

    Raises CheckpointError (one line) when the run there has another config or its latest checkpoint
    cannot be read. Reads only JSON: cheap, before anything is built.
    """
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path) and not has_checkpoints(run_dir):
        if os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
            raise CheckpointError(f"--resume: {run_dir} holds metrics.jsonl but no config.json; not a run to continue")
        return None
    try:
        with open(config_path) as f:
            saved_args = saved_flags(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"--resume: cannot read {config_path} ({one_line(e)})") from None
    _check_same(saved_args, args, run_dir, defaults)
    if not has_checkpoints(run_dir):
        return ResumePoint(None, None)
    checkpointer = Checkpointer(run_dir, keep, create=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            return ResumePoint(None, None)
        meta = checkpointer.read_meta(step)
    finally:
        checkpointer.close()
    _check_same(saved_flags(meta.get("config", {})), args, f"checkpoint {checkpointer.path(step)}", defaults)
    return ResumePoint(step, meta)


def saved_flags(config: dict) -> dict:
    """The flags of a config.json (or a checkpoint's copy of it), in this version's meaning."""
    return upgrade_saved_args(config["args"], config.get("format", 1)) if "args" in config else {}


def check_devices(meta: Optional[dict], num_devices: int, where: str) -> None:
    """A checkpoint holds one buffer shard per device: refuse to resume it on another device count."""
    saved = ((meta or {}).get("config") or {}).get("parallel", {}).get("devices")
    if saved is not None and saved != num_devices:
        raise CheckpointError(
            f"--resume: {where} was written by a {saved}-device run and this run has {num_devices} device(s); "
            f"resume with --num_devices {saved} (on a machine with at least {saved} devices)")


def _check_same(saved_args: dict, args: dict, where: str, defaults: Optional[dict] = None) -> None:
    diffs = config_differences(saved_args, args, defaults)
    if diffs:
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise CheckpointError(
            f"--resume: the config differs from the run in {where}: {diffs[0]}{more}; "
            "resume with the same flags, or start a new --run_dir"
        )


def has_checkpoints(run_dir: str) -> bool:
    """Whether `run_dir` holds at least one complete checkpoint (without creating anything)."""
    directory = os.path.join(run_dir, DIRNAME)
    if not os.path.isdir(directory):
        return False
    return any(name.isdigit() and os.path.isdir(os.path.join(directory, name)) for name in os.listdir(directory))


def truncate_metrics(path: str, last_env_steps: int) -> list[dict]:
    """Keep the metrics rows logged up to `last_env_steps` (what the checkpoint had seen) and drop later rows,
    rewriting the file atomically. Returns the kept rows.

    Only a last line cut short by a kill (no newline at its end) is dropped silently. Any other line that is not
    a JSON object with an `env_steps` (invalid UTF-8, a broken or `null` line), before the checkpoint's step, raises
    CheckpointError naming its line number, and nothing is rewritten: no row is lost without a word."""
    kept, rows = [], []
    if os.path.exists(path):
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        # the last piece has no newline: b"" when the file ends with one, else a line cut by a kill (dropped)
        for number, raw in enumerate(lines[:-1], start=1):
            row, why = _parse_row(raw)
            if why is None and row["env_steps"] > last_env_steps:
                break  # logged after the checkpoint: the continuation logs it again
            if why is not None:
                raise CheckpointError(
                    f"--resume: {path} line {number} is damaged ({why}); repair or delete that line and resume again")
            kept.append(raw + b"\n")
            rows.append(row)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.writelines(kept)
    os.replace(tmp, path)
    return rows


def _parse_row(raw: bytes) -> tuple[Optional[dict], Optional[str]]:
    """(row, None) for a metrics line, or (None, what is wrong with it)."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except ValueError:
        return None, "not JSON"
    if not isinstance(row, dict) or not isinstance(row.get("env_steps"), int):
        return None, "not a metrics row with env_steps"
    return row, None
