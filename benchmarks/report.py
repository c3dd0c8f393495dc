"""`python -m benchmarks.report`: every table of measured figures in README.md and docs/, and the learning
figure, generated from the JSON the benchmarks wrote to benchmarks/results/.

    uv run python -m benchmarks.report            # rewrite the tables and benchmarks/results/learning_cpu-small.png
    uv run python -m benchmarks.report --check    # change nothing; exit 1 naming each table that is out of date

A generated table sits in the markdown between two comments, ``<!-- report:NAME -->`` and ``<!-- /report -->``;
the text between them is replaced by ``BLOCKS[NAME]`` of the results, so prose around a table stays as
written and a table never drifts from its data (tests/test_docs.py runs the check). A row measured on code that
has changed since carries ``superseded`` (what changed) in its JSON: it leaves the current tables and is listed
on docs/experiments.md with the commit it was measured on.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from anakin_tdmpc import reference
from benchmarks import tables

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LEARNING = "learning_cpu-small"
FIGURE = RESULTS / f"{LEARNING}.png"
MARKER = re.compile(r"(<!-- report:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)
ALGOS = ("tdmpc2", "tdmpc")
COLORS = {"tdmpc2": "tab:blue", "tdmpc": "tab:orange"}


@dataclasses.dataclass
class Report:
    """The command line: write the tables and the figure, or check the tables."""

    check: bool = False
    """change nothing; exit 1 if a generated table in README.md or docs/ differs from its data"""
    figure: bool = True
    """also draw the learning figure (benchmarks/results/learning_cpu-small.png); --no_figure skips it"""


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


# -------------------------------------------------------------------------------------------- learning


def learning_rows(current: bool = True, variant: str | None = "") -> list[dict]:
    """The learning suite's rows: the current ones (or only the superseded ones), of one variant ("" is the
    default build; None: every variant), TD-MPC2 first, tasks by name."""
    rows = [r for r in load(LEARNING)["table"] if ("superseded" not in r) == current
            and (variant is None or r["variant"] == variant)]
    return sorted(rows, key=lambda r: (ALGOS.index(r["algo"]), r["task"], r["variant"]))


def normalised_scores(rows: list[dict], step: int = 100_000) -> list[np.ndarray]:
    """Per task, each seed's eval return at ``step`` / the official mean at the same env steps."""
    out = []
    for row in rows:
        point = next((p for p in row["points"] if p["env_steps"] == step), None)
        official = tables.official_at(row, step)
        if point is not None and official is not None and official.mean > 0:
            out.append(np.asarray(tables.seed_values(point), float)[:, None] / official.mean)
    return out


def normalised_iqm(rows: list[dict], step: int = 100_000) -> tuple[float, float, float, int] | None:
    """IQM over (task, seed) of the normalised return at ``step`` with its 95% stratified-bootstrap CI from
    rliable (tasks as strata), and the number of tasks; None without any task."""
    from rliable import metrics

    from anakin_tdmpc.plot import _bootstrap

    scores = normalised_scores(rows, step)
    if not scores:
        return None
    iqm, low, high = _bootstrap(scores, lambda *s: np.array([metrics.aggregate_iqm(np.concatenate(s))]))
    return iqm, low, high, len(scores)


def learning_summary() -> str:
    data = load(LEARNING)
    header = ["at 100k env steps", *(reference.NAMES[a] for a in ALGOS)]
    by_algo = {a: [r for r in learning_rows() if r["algo"] == a] for a in ALGOS}
    below = {a: [r["task"] for r in rows if tables.below_official(r)] for a, rows in by_algo.items()}
    within = {a: [r["task"] for r in rows if tables.below_official(r) is False] for a, rows in by_algo.items()}

    def iqm(a):
        got = normalised_iqm(by_algo[a])
        return "—" if got is None else f"{got[0]:.2f} [{got[1]:.2f}, {got[2]:.2f}]"

    lines = [
        [f"tasks on the current code (`--preset {data['preset']}`, {len(data['seeds'])} seeds)", *(len(by_algo[a]) for a in ALGOS)],
        ["inside or above the official seed range", *(len(within[a]) for a in ALGOS)],
        ["below it", *(", ".join(below[a]) or "none" for a in ALGOS)],
        ["IQM of return / official mean [95% CI]", *(iqm(a) for a in ALGOS)],
    ]
    text = "| " + " | ".join(header) + " |\n|---|" + "---:|" * len(ALGOS) + "\n"
    return text + "".join("| " + " | ".join(str(c) for c in line) + " |\n" for line in lines)


def learning_table() -> str:
    return tables.learning_table(learning_rows())


def learning_superseded() -> str:
    rows = learning_rows(current=False, variant=None)
    label = lambda r: f"{reference.NAMES[r['algo']]} | {r['task']}" + (f" ({r['variant']})" if r["variant"] else "")
    notes = sorted({r["superseded"] for r in rows})
    return tables.learning_table(rows, label, commit=True) + "".join(f"\nMeasured with {n}.\n" for n in notes)


def bf16_pair() -> str:
    """TD-MPC2 walker-walk with bf16 planning (the default) and float32 planning, on the same code."""
    rows = [r for r in learning_rows(variant=None) if r["algo"] == "tdmpc2" and r["task"] == "walker-walk"]
    label = lambda r: "float32 planning" if r["variant"] == "fp32planner" else "bf16 planning (default)"
    return tables.learning_table(rows, label, ("TD-MPC2 walker-walk",), commit=True)


def learning_factors() -> str:
    """The factor runs of benchmarks/results/factors/ (one learning-suite output each: --preset cpu-small with
    one change, its `extra_flags`), each task's cpu-small row of the suite first."""
    factors = []
    for path in sorted((RESULTS / "factors").glob("*.json")):
        data = json.loads(path.read_text())
        factors += [dict(row, factor=data["extra_flags"]) for row in data["table"]]
    tasks = sorted({(r["algo"], r["task"]) for r in factors}, key=lambda t: (ALGOS.index(t[0]), t[1]))
    rows = []
    for algo, task in tasks:
        rows += [dict(r, factor="") for r in learning_rows() if (r["algo"], r["task"]) == (algo, task)]
        rows += sorted((r for r in factors if (r["algo"], r["task"]) == (algo, task)), key=lambda r: r["factor"])
    label = lambda r: f"{reference.NAMES[r['algo']]} | {r['task']} | " + (f"`{r['factor']}`" if r["factor"] else
                                                                           "none (`--preset cpu-small`)")
    return tables.learning_table(rows, label, ("algorithm", "task", "change"), commit=True)


# ------------------------------------------------------------------------------------------------ envs


def env_rows(pick: Callable[[dict], bool], current: bool = True) -> list[dict]:
    rows = load("envs")["tasks"].values()
    return [r for r in rows if pick(r) and ("superseded" not in r) == current]


def envs_suite() -> str:
    return tables.envs_table(env_rows(lambda r: r["module"] == "suite"))


def envs_ports() -> str:
    order = {"custom": 0, "quadruped": 1, "dog": 2}
    rows = env_rows(lambda r: r["module"] in order)
    return tables.envs_table(sorted(rows, key=lambda r: (order[r["module"]], r["task"])), baseline=False)


def envs_brax() -> str:
    return tables.envs_table(env_rows(lambda r: r["module"] == "brax"), baseline=False)


def envs_superseded() -> str:
    rows = env_rows(lambda r: True, current=False)
    text = tables.envs_table(rows, baseline=False).splitlines()
    text[0] += " measured on |"
    text[1] += "---|"
    text[2:] = [line + f" `{r['commit']}` |" for line, r in zip(text[2:], rows)]
    return "\n".join(text) + "\n" + "".join(f"\nMeasured before {n}.\n" for n in sorted({r["superseded"] for r in rows}))


# -------------------------------------------------------------------------------------------- episodic


def episodic(current: bool) -> Callable[[], str]:
    """The episodic runs (benchmarks/results/episodic_cpu-small.json): current ones, or the superseded builds
    with what was different and the commit that recorded them."""

    def table() -> str:
        runs = [r for r in load("episodic_cpu-small")["runs"] if ("superseded" not in r) == current]
        header = ["run", "flags (after `--preset cpu-small`)", "eval return at env steps", "seeds", "wall clock"]
        header += [] if current else ["recorded in", "what differed"]
        rows = []
        for r in runs:
            evals = ", ".join(f"{v:g} ({int(s) // 1000}k)" for s, v in r["eval"].items())
            evals += f"; {r['note']}" if r["note"] else ""
            row = [r["name"], f"`{r['flags']}`", evals, f"{r['seeds'][0]}-{r['seeds'][-1]}" if len(r["seeds"]) > 1 else str(r["seeds"][0]),
                   r["wall"]]
            rows.append(row + ([] if current else [f"`{r['commit']}`", r["superseded"]]))
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]) + "\n"

    return table


# ---------------------------------------------------------------------------------- the other benchmarks


def seeding(name: str) -> Callable[[], str]:
    return lambda: tables.seeding_table(load(name)["evals"])


def throughput(name: str) -> Callable[[], str]:
    return lambda: tables.throughput_report(load(name), title=False)


def throughput_before() -> str:
    """The 5M model's first measurement (a list of rows, before the benchmark's JSON had its current form)."""
    rows = load("throughput")
    return tables.markdown("", ["model", "N", "MPPI", "env steps/s", "agent steps/s", "compile (s)"],
                           [[f"{r['model_size']}M", r["num_envs"], f"{r['num_samples']}x{r['mppi_iterations']}",
                             f"{r['env_steps_per_s']:.2f}", f"{r['agent_steps_per_s']:.2f}", f"{r['compile_s']:.1f}"]
                            for r in rows])


BLOCKS: dict[str, Callable[[], str]] = {
    "learning-summary": learning_summary,
    "learning-table": learning_table,
    "learning-superseded": learning_superseded,
    "bf16-pair": bf16_pair,
    "learning-factors": learning_factors,
    "envs-suite": envs_suite,
    "envs-ports": envs_ports,
    "envs-brax": envs_brax,
    "envs-superseded": envs_superseded,
    "episodic": episodic(current=True),
    "episodic-superseded": episodic(current=False),
    "seeding-cartpole-swingup": seeding("seeding_n16"),
    "seeding-walker-walk": seeding("seeding_n16_walker-walk"),
    "throughput-quick": throughput("throughput_quick"),
    "throughput-5m": throughput("cpu_5M/throughput"),
    "throughput-tiny": throughput("cpu_tiny/throughput"),
    "throughput-before": throughput_before,
    "scaling": lambda: tables.scaling_table(load("scaling_quick"), title=False),
}


# ------------------------------------------------------------------------------------------- documents


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def fill(text: str, where: str = "") -> str:
    """``text`` with every generated block rewritten from the results."""
    cache: dict[str, str] = {}

    def body(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise SystemExit(f"error: {where}: unknown generated table '{name}'; known: {', '.join(BLOCKS)}")
        if name not in cache:
            cache[name] = BLOCKS[name]()
        return match.group(1) + cache[name] + match.group(4)

    return MARKER.sub(body, text)


def stale(root: Path = ROOT) -> list[str]:
    """'file: table' for every generated table whose committed text differs from what the results give."""
    out = []
    for path in documents(root):
        text = path.read_text()
        new = fill(text, path.name)
        if new != text:
            old_blocks = {m["name"]: m["body"] for m in MARKER.finditer(text)}
            out += [f"{path.relative_to(root)}: {m['name']}" for m in MARKER.finditer(new)
                    if old_blocks.get(m["name"]) != m["body"]]
    return out


# ---------------------------------------------------------------------------------------------- figure


def learning_figure(table: list[dict], path: str | Path) -> None:
    """One panel per task (tasks by name): our mean eval return over seeds with the seeds' range, beside the
    official published mean and seed range of the same algorithm; TD-MPC2 and TD-MPC in their own colours.
    A last panel aggregates: per algorithm, the IQM over tasks of the return / the official mean at 100k env
    steps, with its 95% stratified-bootstrap CI (rliable). Rows of other variants and superseded rows are left
    out."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = [r for r in table if not r["variant"] and "superseded" not in r and r["points"]]
    tasks = sorted({r["task"] for r in rows})
    cols = 3
    nrows = -(-(len(tasks) + 1) // cols)
    fig = Figure(figsize=(4.0 * cols, 2.9 * nrows + 0.5), dpi=110)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    handles = {}
    for ax, task in zip(axes, tasks):
        for row in sorted((r for r in rows if r["task"] == task), key=lambda r: ALGOS.index(r["algo"])):
            algo, color = row["algo"], COLORS[row["algo"]]
            x = np.array([p["env_steps"] for p in row["points"]])
            mean = [p["mean"] for p in row["points"]]
            name, seeds = reference.NAMES[algo], len(row["points"][-1]["seeds"])
            handles[f"ours, {name}: mean and range of {seeds} seeds"], = ax.plot(
                x, mean, "o-", color=color, ms=3, lw=1.6)
            ax.fill_between(x, [p["min"] for p in row["points"]], [p["max"] for p in row["points"]],
                            color=color, alpha=0.2, lw=0)
            band = reference.band(algo, task, int(x.max()))
            if band is not None:
                s, m, lo, hi = band
                # the published points only (every 100k env steps): a line between them would be a guess
                shift = 2_000 * (ALGOS.index(algo) - 0.5)  # the two algorithms' points side by side
                seeds = len(reference.curve(algo, task))
                handles[f"published {name}: mean and range of {seeds} seeds"] = ax.errorbar(
                    s + shift, m, yerr=[m - lo, hi - m], fmt="s", color=color, mfc="white", ms=5, capsize=3, lw=1.2)
        ax.set_title(task, fontsize=10)
        ax.set_xlim(-4_000, 104_000)
        ax.set_ylim(0, 1050)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
        ax.set_xlabel("env steps", fontsize=8)
        ax.set_ylabel("eval return", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    ax = axes[len(tasks)]
    for i, algo in enumerate(ALGOS):
        got = normalised_iqm([r for r in rows if r["algo"] == algo])
        if got is None:
            continue
        iqm, low, high, n = got
        ax.errorbar([iqm], [i], xerr=[[iqm - low], [high - iqm]], fmt="o", color=COLORS[algo], capsize=4, ms=6)
        ax.annotate(f"{iqm:.2f} ({n} tasks)", (iqm, i), xytext=(0, 8), textcoords="offset points", ha="center",
                    fontsize=7)
    ax.axvline(1.0, color="gray", ls="--", lw=1)
    ax.set_yticks(range(len(ALGOS)), [reference.NAMES[a] for a in ALGOS], fontsize=8)
    ax.set_ylim(-0.7, len(ALGOS) - 0.3)
    ax.set_xlabel("IQM of return / official mean, 95% CI", fontsize=8)
    ax.set_title("all tasks at 100k env steps", fontsize=10)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    for extra in axes[len(tasks) + 1:]:
        extra.set_visible(False)
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.savefig(path)


# ------------------------------------------------------------------------------------------------ main


def main(opts: Report) -> int:
    if opts.check:
        out = stale()
        for line in out:
            print(f"out of date: {line}")
        if out:
            print("run `python -m benchmarks.report` to rewrite them", file=sys.stderr)
        return 1 if out else 0
    for path in documents():
        text = path.read_text()
        new = fill(text, path.name)
        if new != text:
            path.write_text(new)
            print(f"wrote {path.relative_to(ROOT)}")
    if opts.figure:
        learning_figure(load(LEARNING)["table"], FIGURE)
        print(f"wrote {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    import tyro

    raise SystemExit(main(tyro.cli(Report, prog="python -m benchmarks.report", use_underscores=True)))
