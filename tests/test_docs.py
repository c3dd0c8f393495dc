"""The documentation is checked against the code and the data: every table of measured figures in README.md
and docs/ is what `python -m benchmarks.report` writes from benchmarks/results/, and every `python -m ...`
command in them names a module that exists and flags its own parser accepts (parsed only: nothing trains)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_generated_tables_match_the_results():
    from benchmarks import report

    assert report.stale(ROOT) == [], "run `python -m benchmarks.report` to rewrite them"


def test_every_generated_table_is_used_and_every_marker_is_known():
    from benchmarks import report

    used = [m["name"] for doc in DOCS for m in report.MARKER.finditer(doc.read_text())]
    assert sorted(set(used)) == sorted(report.BLOCKS)


def test_the_check_sees_a_stale_table(tmp_path):
    from benchmarks import report

    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("x\n<!-- report:scaling -->\n| stale |\n<!-- /report -->\n")
    assert report.stale(tmp_path) == ["README.md: scaling"]


# ------------------------------------------------------------------------------------------- commands


def commands(text: str) -> list[str]:
    """Each `python -m module args` in a markdown text: in fenced code blocks (lines joined at a trailing
    backslash, comments cut) and in inline code spans. Optional parts written as [--flag value] count as
    given; a module named without flags (in prose) is checked to exist."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#\s|^#", line)[0]
            found += re.findall(r"python -m [\w.]+[^`]*", line)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [m for span in re.findall(r"`([^`\n]+)`", text) for m in re.findall(r"python -m [\w.]+.*", span)]
    return [c.replace("[", "").replace("]", "").strip() for c in found]


def _cli_dataclass(module: str, name: str, prog: str):
    def parse(argv):
        import contextlib
        import io

        import tyro

        cls = getattr(importlib.import_module(module), name)
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured):
                return tyro.cli(cls, args=argv, use_underscores=True, prog=prog)
        except SystemExit:
            lines = [line.strip(" │╭╮╰╯─") for line in captured.getvalue().splitlines()]
            raise SystemExit(" ".join(line for line in lines if line)) from None

    return parse


def _parse_run(argv):
    from anakin_tdmpc.run import parse_args

    return parse_args(argv)


def _parse_flags(module: str, name: str, kinds: dict):
    def parse(argv):
        from anakin_tdmpc.cli import ConfigError, parse_flags

        try:
            return parse_flags(getattr(importlib.import_module(module), name), argv, module, kinds)
        except ConfigError as e:
            raise SystemExit(f"error: {e}") from None

    return parse


# module -> a function that parses its flags the way its main does (SystemExit on bad flags)
PARSERS = {
    "anakin_tdmpc.run": _parse_run,
    "anakin_tdmpc.evaluate": _parse_flags("anakin_tdmpc.evaluate", "EvalArgs",
                                          {"checkpoint": "int", "episodes": "int", "seed": "int"}),
    "anakin_tdmpc.plot": _parse_flags("anakin_tdmpc.plot", "PlotArgs", {"at": "int"}),
    **{f"benchmarks.{m}": _cli_dataclass(f"benchmarks.{m}", cls, f"python -m benchmarks.{m}")
       for m, cls in [("learning", "Learn"), ("envs", "EnvBench"), ("throughput", "Bench"), ("scaling", "Options"),
                      ("seeding", "Seeding"), ("profile_ops", "Options"), ("report", "Report"),
                      ("gpu_predict", "Predict")]},
}

COMMANDS = sorted({(doc.name, c) for doc in DOCS for c in commands(doc.read_text())})


def check_command(command: str) -> None:
    """Raises AssertionError when the command's module is missing or its flags do not parse."""
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-m"], command
    module, flags = argv[2], argv[3:]
    assert importlib.util.find_spec(module) is not None, f"no module {module}: {command}"
    assert module in PARSERS, f"no parser known for {module} (add it to PARSERS): {command}"
    if not flags or "--help" in flags:  # a program named in prose, or its help: nothing more to parse
        return
    try:
        PARSERS[module](flags)
    except SystemExit as e:
        raise AssertionError(f"{command}\n  does not parse: {e}") from None


def test_the_docs_have_commands():
    assert any("anakin_tdmpc.run" in c for _, c in COMMANDS) and any("benchmarks." in c for _, c in COMMANDS)


@pytest.mark.parametrize("doc, command", COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_command_parses(doc, command):
    check_command(command)


def test_a_broken_command_is_caught():
    with pytest.raises(AssertionError, match="does not parse"):
        check_command("python -m benchmarks.learning --tasks cartpole-balance --milestones 10000 20000 --small")
    with pytest.raises(AssertionError, match="no module"):
        check_command("python -m benchmarks.no_such_benchmark")
