"""Markdown tables of the benchmarks' results, shared by the benchmarks (which print and write them as they
measure) and by ``python -m benchmarks.report`` (which writes them into README.md and docs/ from the JSON in
benchmarks/results/). Pure functions of the JSON: no JAX, no MuJoCo, so the docs test stays fast."""

from __future__ import annotations

from typing import Optional

from anakin_tdmpc import reference


def markdown(title: str, header: list[str], rows: list[list], notes: str = "") -> str:
    """A table under a level-3 title, numbers right-aligned, notes after it."""
    lines = ([f"### {title}", ""] if title else []) + ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + ("\n\n" + notes if notes else "") + "\n"


def mib(x: float) -> str:
    return f"{x / 2**20:,.0f}"


# ------------------------------------------------------------------------------------------- learning


def seed_values(point: dict) -> list[float]:
    """Each seed's eval return at one eval point of a learning row. Rows written since the JSON kept them have
    ``values``; for older rows of two seeds, min and max are the two seeds' values."""
    if "values" in point:
        return list(point["values"])
    if len(point["seeds"]) == 2:
        return [point["min"], point["max"]]
    if len(point["seeds"]) == 1:
        return [point["mean"]]
    raise ValueError(f"a point of {len(point['seeds'])} seeds without per-seed values")


def cell(mean: float, low: float, high: float, many: bool) -> str:
    return f"{mean:.0f}" + (f" ({low:.0f}–{high:.0f})" if many else "")


def official_at(row: dict, step: int) -> Optional[reference.Point]:
    return reference.at(row["algo"], row["task"], step)


def below_official(row: dict, step: int = 100_000) -> Optional[bool]:
    """Our mean below the official seed range at ``step`` (None: no eval or no official point there)."""
    point = next((p for p in row["points"] if p["env_steps"] == step), None)
    official = official_at(row, step)
    if point is None or official is None:
        return None
    return point["mean"] < official.low


def learning_table(rows: list[dict], label=None, label_header: tuple[str, ...] = ("algorithm", "task"),
                   commit: bool = False) -> str:
    """Our eval return (mean over seeds, range) at every eval point, the official mean and seed range at 100k,
    and training minutes per 100k env steps; **bold** where below the official range at 100k. ``label(row)``
    names a row (default: algorithm and task); ``commit`` adds the commit each row was measured on."""
    label = label or (lambda r: f"{reference.NAMES[r['algo']]} | {r['task']}")
    steps = sorted({p["env_steps"] for row in rows for p in row["points"]})
    header = list(label_header) + [f"{s // 1000}k" for s in steps] + ["official at 100k", "min / 100k"]
    header += ["measured on"] if commit else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(label_header)
             + "---:|" * (len(header) - len(label_header))]
    for row in rows:
        by_step = {p["env_steps"]: p for p in row["points"]}
        cells = [label(row)]
        for s in steps:
            p = by_step.get(s)
            text = "—" if p is None else cell(p["mean"], p["min"], p["max"], len(p["seeds"]) > 1)
            if p is not None and s == 100_000 and below_official(row, s):
                text = f"**{text}**"
            cells.append(text)
        official = official_at(row, 100_000)
        cells.append("—" if official is None else cell(official.mean, official.low, official.high, official.seeds > 1))
        cells.append("—" if row.get("seconds_per_100k") is None else f"{row['seconds_per_100k'] / 60:.1f}")
        cells += [f"`{row.get('commit', '?')}`"] if commit else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- envs


def envs_table(rows: list[dict], baseline: bool = True, load: bool = True) -> str:
    """Env steps/s per task; with ``baseline``, playground's env beside ours where it was measured."""
    header = ["task", "port", "control dt (sub-steps)", "compile + 1st run (s)", "env-steps/s (median)", "best"]
    header += ["playground's env-steps/s (median)", "ours / playground's"] if baseline else []
    header += ["load avg (1 min)"] if load else []
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    for r in rows:
        cells = [r["task"], r["module"], f"{r['ctrl_dt']:g} s ({r['substeps']})", str(r["compile_plus_first_run_s"]),
                 f"{r['env_steps_per_s_median']:,.0f}", f"{r['env_steps_per_s_best']:,.0f}"]
        if baseline:
            stock = r.get("playground_env_steps_per_s_median")
            if stock is None:
                cells += ["", ""]
            elif r["playground_ctrl_dt"] != r["ctrl_dt"]:  # rates per control step: not one clock for both
                cells += [f"{stock:,.0f} ({r['playground_ctrl_dt']:g} s steps)", ""]
            else:
                cells += [f"{stock:,.0f}", f"{r['env_steps_per_s_median'] / stock:.2f}"]
        if load:
            cells.append(f"{r['load_avg_1min'][0]:.1f} -> {r['load_avg_1min'][1]:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------- seeding


def seeding_table(results: dict[str, dict], rules: tuple[str, ...] = ("whole_episode", "single_env")) -> str:
    """Eval return per seed and each rule's mean over seeds at every eval point of benchmarks.seeding's runs
    (``results``: "<rule>/<seed>" -> {env step: return}; JSON keys may be strings)."""
    results = {k: {int(s): v for s, v in per.items()} for k, per in results.items()}
    seeds = sorted({int(k.split("/")[1]) for k in results})
    steps = sorted(next(iter(results.values())))
    header = ["env steps", *results, *(f"mean {rule}" for rule in rules)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for step in steps:
        values = [results[k].get(step, float("nan")) for k in results]
        means = [sum(results[f"{rule}/{s}"][step] for s in seeds) / len(seeds) for rule in rules]
        lines.append(f"| {step:,} | " + " | ".join(f"{v:.1f}" for v in values + means) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- throughput, scaling


def throughput_report(results: dict, title: bool = True) -> str:
    """The tables of one benchmarks.throughput result (its JSON): fused SPS, phase split, host loop, FLOPs."""
    m, bench = results["machine"], results["bench"]
    fused, phases, hosts, flops = results["fused"], results["phases"], results["host_loop"], results["flops"]
    where = f"{bench['algo']} on {bench['task']}, {m['backend']} ({m['device']}, {m['cpu_count']} CPU cores), jax {m['jax']}"
    out = [f"## Throughput: {where}\n"] if title else []
    out.append(markdown(
        f"Fused training (UTD {bench['utd']:g} update per agent step)",
        ["model", "N", "MPPI", "env steps/s", "agent steps/s", "updates/s", "compile (s)", "chunk memory (MiB)",
         "peak memory (MiB)"],
        [[r["model"], r["num_envs"], f"{r['mppi_samples']}x{r['mppi_iterations']}", f"{r['env_steps_per_s']:,.1f}",
          f"{r['agent_steps_per_s']:,.2f}", f"{r['updates_per_s']:,.2f}", f"{r['compile_s']:.1f}",
          mib(r["chunk_footprint_bytes"]), mib(r["peak_memory_bytes"])] for r in fused],
        "env steps count the action repeat (2); chunk memory: XLA's footprint of the compiled chunk (arguments, "
        f"including the 1M-transition replay buffer, + temporaries); peak memory: {fused[0]['peak_memory_kind']}, "
        "cumulative over the run."))
    out.append(markdown(
        "Phase split: one iteration's pieces timed alone (ms)",
        ["model", "N", "env step", "plan (N envs)", "1 update", "updates / iter", "sum", "fused iteration",
         "env / plan / updates"],
        [[r["model"], r["num_envs"], f"{r['env_ms']:.2f}", f"{r['plan_ms']:.1f}", f"{r['update_ms']:.1f}",
          r["updates_per_iter"], f"{r['sum_ms']:.1f}", f"{r['fused_ms']:.1f}",
          f"{100 * r['share_env']:.0f}% / {100 * r['share_plan']:.0f}% / {100 * r['share_updates']:.0f}%"]
         for r in phases],
        "sum = env + plan + updates/iter x update (each one jitted call, the update on a batch sampled beforehand); "
        "fused iteration = the same work plus buffer insertion and sampling inside the compiled loop."))
    if hosts:
        out.append(markdown(
            f"Fused loop vs the conventional host loop (1 env, UTD {bench['utd']:g}, measured side by side)",
            ["model", "host loop agent steps/s", "fused agent steps/s (N=1)", "speed-up (N=1)",
             "fused agent steps/s (best N)", "speed-up (best N)"],
            [[h["model"], f"{h['host_agent_steps_per_s']:.2f}", f"{h['fused_agent_steps_per_s']:.2f}",
              f"{h['speedup']:.2f}x", f"{h['best_fused_agent_steps_per_s']:.2f} (N={h['best_num_envs']})",
              f"{h['best_speedup']:.2f}x"] for h in hosts],
            "host loop: Python loop, jitted act + jitted update per agent step, NumPy replay on the host, one env "
            f"step call per agent step with device->host transfers. N=1 speed-up: median of {bench['rounds']} "
            "alternating rounds; best-N speed-up = that x (best N / N=1) from the fused table above."))
    out.append(markdown(
        "FLOPs (XLA cost analysis) and achieved FLOP/s of the fused loop",
        ["model", "N", "GFLOP / plan (1 env)", "GFLOP / update", "GFLOP / agent step", "achieved GFLOP/s",
         "fp32 matmul peak GFLOP/s", "fraction of peak"],
        [[r["model"], r["num_envs"], f"{r['plan_flops'] / 1e9:.1f}", f"{r['update_flops'] / 1e9:.1f}",
          f"{r['step_flops'] / 1e9:.1f}", f"{r['achieved_flops'] / 1e9:.1f}", f"{r['matmul_peak_flops'] / 1e9:.0f}",
          f"{100 * r['fraction_of_peak']:.0f}%"] for r in flops],
        "GFLOP / agent step = plan + UTD x update (plans are vmapped, so N envs cost N plans); achieved = that x "
        "fused agent steps/s; peak: best n x n x n fp32 jnp.dot (n = 512..2048 on CPU, 2048..8192 on GPU). The "
        "physical limit is peak / (GFLOP per agent step) agent steps/s."))
    return "\n".join(out)


def scaling_table(results: dict, title: bool = True) -> str:
    """The table of one benchmarks.scaling result (its JSON)."""
    opts, info, rows = results["options"], results["machine"], results["rows"]
    model = f"{opts['model_size']}M" + (" (reduced planner)" if opts["quick"] else " (paper planner)")
    return markdown(
        (f"Scaling: {opts['algo']} {model} on {opts['task']}, N={opts['num_envs']} envs per seed, UTD 1 "
         f"({info['backend']}, {info['device']})") if title else "",
        ["devices D", "seeds S", "env steps/s (one seed)", "env steps/s (all seeds)", "speed-up", "efficiency",
         "compile s"],
        [[r["devices"], r["seeds"], f"{r['env_steps_per_s']:.1f}", f"{r['env_steps_per_s_all_seeds']:.1f}",
          f"{r['speedup']:.2f}x", f"{r['efficiency']:.2f}", f"{r['compile_s']:.0f}"] for r in rows],
        f"Median of {opts['rounds']} alternating rounds of {opts['iters']} iterations after seeding. "
        "efficiency = SPS_all / (D x S x SPS at D=1, S=1)."
        + (" CPU devices are forced host devices sharing the same cores." if info["backend"] == "cpu" else ""))
