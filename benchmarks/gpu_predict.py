"""What the first GPU run should measure, predicted on the CPU before any GPU time is spent.

    uv run python -m benchmarks.gpu_predict    # ~15 minutes on one core -> benchmarks/results/gpu/prediction.{json,md}
                                               # and the same table in docs/gpu.md

For each row of benchmarks/gpu_check.sh's throughput table (TD-MPC2 on cheetah-run: the 5M model with the paper's
planner at N = 1, 16, 64, 256 parallel envs, the 1M model with its reduced planner at N = 1024, 4096; UTD 1, so
an iteration runs N updates), the pieces of one fused iteration (loop/fused.py) are lowered and compiled here,
for the CPU, on abstract shapes (nothing is allocated):

    plan   `agent.act` for the N envs (MPPI over the model)
    env    one `env.step` of the N envs (MJX, action repeat 2; compiled once at N = 16, its loops rolled: vmapped
           over the envs, it is the same kernels at any N, its flops and bytes scaled by N / 16, and everything
           x 2 for the action repeat's loop, which XLA counts once)
    update one replay sample + `agent.update`; an iteration runs updates_per_iter = N of them, one after another

plan and update traced with their static loops unrolled (XLA's cost analysis counts a loop body once, whatever
its trip count; unrolled, MJX's loops would take the CPU compiler tens of GB). From each compiled program: XLA's cost analysis (`compiled
.cost_analysis()`, after optimization: flops and bytes accessed) and the number of kernels, counted in the
optimized HLO as the instructions that run as one launch each (a fusion, a custom call, a dot or gather XLA left
unfused, ...) outside fusion bodies, with parameters, constants, tuples and control flow left out. Per iteration:
plan + env + N x update. Predicted H100 time per iteration = max(compute: flops / 60 TFLOP/s (fp32 without tensor
cores; the networks run fp32), memory: bytes / 3 TB/s, launches: kernels x 5 us (launch + the while loop's
sync)); the bound is whichever is largest.

What this leaves out, on purpose: the CPU fuses differently from the GPU (XLA:GPU fuses more and turns dots
into cuBLAS calls, so the GPU kernel count is likely lower, by an unknown factor); MJX's solver runs a while loop
whose iterations depend on the state, counted once, with the line search scan inside it (so the env's
counts are those of one solver iteration with one line-search step, a floor); the replay insert (a scatter of N rows) is not counted; the
compute peak assumes full use of the GPU, which matrices this small (batch 256, width 512) never reach.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from typing import Optional

if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    # LLVM's code generation only (the HLO, and with it the counts, are the same): compiles ~2x faster
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402

from anakin_tdmpc.build import build  # noqa: E402
from anakin_tdmpc.config import Args  # noqa: E402
from benchmarks.throughput import MODELS, act_fn, unrolled_loops  # noqa: E402

ROWS = (("5M", 1), ("5M", 16), ("5M", 64), ("5M", 256), ("1M", 1024), ("1M", 4096))
"""(model, N) of benchmarks/gpu_check.sh's throughput table"""

H100 = {"fp32_flops": 60e12, "tf32_flops": 400e12, "bf16_flops": 790e12, "hbm_bytes_per_s": 3.0e12,
        "launch_s": 5e-6}
"""H100 SXM: dense peaks, HBM bandwidth, and the cost of one kernel in a loop (launch + sync)"""

# instructions that launch nothing: values, tuples, views and the control flow itself (its bodies are counted)
NOT_KERNELS = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while", "conditional", "call",
               "after-all", "opt-barrier", "partition-id", "replica-id", "iota"}


@dataclasses.dataclass
class Predict:
    """Predict the GPU throughput table from XLA's cost analysis and kernel counts of the CPU programs."""

    rows: tuple[str, ...] = tuple(f"{m}:{n}" for m, n in ROWS)
    """rows as model:N (models of benchmarks.throughput's MODELS['tdmpc2'])"""
    task: str = "cheetah-run"
    """task (benchmarks.throughput's default)"""
    out_dir: str = "benchmarks/results/gpu"
    """folder for prediction.json / prediction.md"""
    check_steps: int = 1_000_000
    """env steps whose wall-clock is predicted for the 5M model at N = 16 (the first GPU run's check)"""
    env_num_envs: int = 16
    """N of the one env step compiled (MJX takes minutes); other N scale its flops and bytes, same kernels"""


def hlo_kernels(text: str) -> dict:
    """Kernel-like instructions of an optimized HLO module's text: {'fusions': n, 'other': n, 'ops': {opcode: n}},
    counted in the entry computation and the bodies of its control flow (while, conditional, call), each once."""
    comps, current = {}, None
    for line in text.splitlines():
        head = None if line[:1].isspace() else re.match(r"(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$", line)
        if head:  # a computation's first line: `%name (params) -> type {`, unindented
            current = head.group(2)
            comps[current] = {"entry": bool(head.group(1)), "lines": []}
        elif current and line.strip() == "}":
            current = None
        elif current:
            comps[current]["lines"].append(line)
    ops_of = {}
    referenced = {}  # computation -> how it is called: control flow (counted) or a fusion / reducer body (not)
    for name, comp in comps.items():
        ops = []
        for line in comp["lines"]:
            m = re.match(r"\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\s([a-z][a-z\-]*)\(", line)
            if not m:
                continue
            op = m.group(1)
            ops.append(op)
            for key, called in re.findall(r"\b(calls|to_apply|body|condition|branch_computations|"
                                          r"true_computation|false_computation)=\{?([^,}\s]+(?:,\s*%[\w.\-]+)*)",
                                          line):
                for c in re.findall(r"%?([\w.\-]+)", called):
                    control = key in ("body", "condition", "branch_computations", "true_computation",
                                      "false_computation") or (key == "to_apply" and op == "call")
                    referenced[c] = referenced.get(c, False) or control
        ops_of[name] = ops
    counted = [n for n, c in comps.items() if c["entry"] or referenced.get(n, False)]
    total = {}
    for name in counted:
        for op in ops_of[name]:
            if op not in NOT_KERNELS:
                total[op] = total.get(op, 0) + 1
    fusions = total.get("fusion", 0)
    return {"fusions": fusions, "other": sum(total.values()) - fusions, "ops": dict(sorted(total.items()))}


def analyze(lowered, name: str) -> dict:
    """Compile a lowered program for the CPU -> its cost analysis and kernel counts."""
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    kernels = hlo_kernels(compiled.as_text())
    print(f"  {name}: compiled in {compile_s:.0f} s", flush=True)
    return {"flops": float(cost.get("flops", 0.0)), "bytes": float(cost.get("bytes accessed", 0.0)),
            "kernels": kernels["fusions"] + kernels["other"], "fusions": kernels["fusions"],
            "other_ops": kernels["ops"], "compile_s": compile_s}


def pieces(task: str, model: str, num_envs: int, env_n: int, cache: dict) -> tuple[dict, dict]:
    """The three programs of one fused iteration at (model, N) -> ({piece: analysis}, facts of the setup)."""
    args = Args(algo="tdmpc2", task=task, num_envs=num_envs, utd=1.0, total_timesteps=10**9, eval_episodes=0,
                seed_steps=4 * num_envs, **MODELS["tdmpc2"][model])
    env, algo, loop, schedule = build(args)
    carry = jax.eval_shape(loop.init_carry, jax.random.key(0))
    key = jax.eval_shape(lambda: jax.random.key(0))

    def sample_and_update(agent, buffer, rng):
        k_sample, k_update = jax.random.split(rng)
        return algo.update(agent, loop._sample(buffer, k_sample), k_update)

    out = {}
    with unrolled_loops():
        out["plan"] = analyze(jax.jit(act_fn(algo)).lower(carry.agent, carry.env_state.obs, carry.plan_mean, key,
                                                           carry.agent_steps), f"{model} N={num_envs} plan")
        if ("update", model) not in cache:
            cache[("update", model)] = analyze(jax.jit(sample_and_update).lower(carry.agent, carry.buffer, key),
                                              f"{model} update")
    if "env" not in cache:  # MJX compiles for minutes: once, at env_n envs, its loops rolled (see above)
        state = jax.eval_shape(lambda k: env.reset(k, env_n), jax.random.key(0))
        action = jax.ShapeDtypeStruct((env_n, env.action_dim), np.float32)
        cache["env"] = analyze(env.jit(env.step).lower(state, action), f"N={env_n} env")
    # vmapped over the envs: the same kernels for any N, each doing N / env_n times the work; the action repeat's
    # loop (envs/wrapper.py) around the physics counted once by XLA, so its body's counts x the repeat
    scale, repeat = num_envs / env_n, env.action_repeat
    out["env"] = {**cache["env"], "flops": repeat * scale * cache["env"]["flops"],
                  "bytes": repeat * scale * cache["env"]["bytes"], "kernels": repeat * cache["env"]["kernels"],
                  "fusions": repeat * cache["env"]["fusions"], "scaled_from_num_envs": env_n}
    out["update"] = cache[("update", model)]
    facts = {"updates_per_iter": schedule.updates_per_iter, "action_repeat": env.action_repeat,
             "mppi": f"{algo.cfg.num_samples}x{algo.iterations}", "batch_size": algo.cfg.batch_size}
    return out, facts


def predict_row(model: str, num_envs: int, parts: dict, facts: dict) -> dict:
    k = facts["updates_per_iter"]
    per_iter = {q: parts["plan"][q] + parts["env"][q] + k * parts["update"][q] for q in ("flops", "bytes", "kernels")}
    times = {"compute": per_iter["flops"] / H100["fp32_flops"], "memory": per_iter["bytes"] / H100["hbm_bytes_per_s"],
             "launch": per_iter["kernels"] * H100["launch_s"]}
    bound = max(times, key=times.get)
    iteration_s = times[bound]
    env_steps_per_s = num_envs * facts["action_repeat"] / iteration_s
    return {
        "model": model, "num_envs": num_envs, **facts,
        "plan": parts["plan"], "env": parts["env"], "update": parts["update"],
        "iteration_flops": per_iter["flops"], "iteration_bytes": per_iter["bytes"],
        "iteration_kernels": per_iter["kernels"],
        "compute_ms": 1e3 * times["compute"], "memory_ms": 1e3 * times["memory"], "launch_ms": 1e3 * times["launch"],
        "compute_tf32_ms": 1e3 * per_iter["flops"] / H100["tf32_flops"],
        "bound": bound, "iteration_ms": 1e3 * iteration_s,
        "env_steps_per_s": env_steps_per_s, "agent_steps_per_s": num_envs / iteration_s,
        "updates_per_s": k / iteration_s,
    }


def markdown(p: Predict, rows: list[dict], check: Optional[dict]) -> str:
    lines = [
        "## Predicted H100 throughput (before any GPU)", "",
        f"Written by `python -m benchmarks.gpu_predict` (jax {jax.__version__}, CPU programs, task {p.task}, TD-MPC2, "
        "UTD 1: an iteration = plan + env step + N updates). Per iteration: XLA's cost analysis of the compiled CPU "
        "programs (flops, bytes accessed) and their kernel count (optimized HLO; the CPU fuses differently from "
        "the GPU). Time = max(flops / 60 TFLOP/s fp32, bytes / 3 TB/s, kernels x 5 us).", "",
        "| model | N | MPPI | GFLOP / iter | GB / iter | kernels / iter (plan + env + N x update) | compute ms "
        "| memory ms | launch ms | bound | predicted ms / iter | env steps/s | updates/s |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        kern = f"{r['iteration_kernels']:,} ({r['plan']['kernels']} + {r['env']['kernels']} + {r['num_envs']} x " \
               f"{r['update']['kernels']})"
        lines.append(f"| {r['model']} | {r['num_envs']} | {r['mppi']} | {r['iteration_flops'] / 1e9:,.1f} | "
                     f"{r['iteration_bytes'] / 1e9:,.2f} | {kern} | {r['compute_ms']:,.2f} | {r['memory_ms']:,.2f} | "
                     f"{r['launch_ms']:,.1f} | {r['bound']} | {r['iteration_ms']:,.1f} | {r['env_steps_per_s']:,.0f} | "
                     f"{r['updates_per_s']:,.0f} |")
    lines += ["", "Per piece (one call; the update's counts include its replay sample):", "",
              "| model | N | piece | GFLOP | GB accessed | kernels | of which fusions | CPU compile s |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for piece in ("plan", "env", "update"):
            a = r[piece]
            lines.append(f"| {r['model']} | {r['num_envs']} | {piece} | {a['flops'] / 1e9:,.2f} | "
                         f"{a['bytes'] / 1e9:,.3f} | {a['kernels']} | {a['fusions']} | {a['compile_s']:.0f} |")
    if check:
        lines += ["", f"**The check for the first GPU run**: the 5M model at N = 16 should take "
                      f"{check['iteration_ms']:.1f} ms per iteration ({check['bound']}-bound), "
                      f"{check['env_steps_per_s']:,.0f} env steps/s: {p.check_steps:,} env steps in "
                      f"{check['check_wall_clock_s'] / 60:,.0f} minutes ({check['check_wall_clock_s'] / 3600:.2f} h), "
                      "compilation, seeding and evaluation left out."]
    lines += ["", "Left out: MJX's solver loop counted as one iteration, the replay insert, and how far below the peaks "
                  "matrices this small run; a measured rate below the prediction is the expected direction. "
                  f"With TF32 tensor cores (400 TFLOP/s) the compute times shrink {H100['tf32_flops'] / H100['fp32_flops']:.1f}x."]
    return "\n".join(lines) + "\n"


DOCS = "docs/gpu.md"
BEGIN, END = "<!-- prediction: written by python -m benchmarks.gpu_predict -->", "<!-- end of prediction -->"


def embed_in_docs(text: str, docs: str = DOCS) -> bool:
    """Put the prediction's markdown between docs/gpu.md's markers (kept in sync; tests/test_gpu_check.py checks)."""
    if not os.path.exists(docs):
        return False
    page = open(docs).read()
    if BEGIN not in page or END not in page:
        return False
    before, rest = page.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    body = text.replace("## Predicted", "### Predicted", 1)
    with open(docs, "w") as f:
        f.write(f"{before}{BEGIN}\n{body}{END}{after}")
    return True


def main(p: Predict) -> dict:
    cache, rows = {}, []
    for spec in p.rows:
        model, n = spec.split(":")
        t0 = time.perf_counter()
        parts, facts = pieces(p.task, model, int(n), p.env_num_envs, cache)
        rows.append(predict_row(model, int(n), parts, facts))
        r = rows[-1]
        print(f"{model} N={n}: {r['iteration_ms']:.2f} ms/iter ({r['bound']}), {r['env_steps_per_s']:,.0f} env steps/s"
              f" [{time.perf_counter() - t0:.0f} s]", flush=True)
    check = next((r for r in rows if (r["model"], r["num_envs"]) == ("5M", 16)), None)
    if check:
        check["check_wall_clock_s"] = p.check_steps / check["env_steps_per_s"]
    text = markdown(p, rows, check)
    result = {"predict": dataclasses.asdict(p), "h100": H100, "jax": jax.__version__, "rows": rows}
    os.makedirs(p.out_dir, exist_ok=True)
    with open(os.path.join(p.out_dir, "prediction.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(p.out_dir, "prediction.md"), "w") as f:
        f.write(text)
    if p.rows == Predict.rows and embed_in_docs(text):  # the docs show the full table only
        print(f"updated {DOCS}")
    print(text)
    return result


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(tyro.cli(Predict, use_underscores=True))
