"""The command line around tyro: flags -> a dataclass (`Args`, evaluate's and plot's), every numeric flag's
value checked first so that a bad one is one `error:` line naming the flag (tyro alone would print a box, and
refuses integers written as `1e6`)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import sys
from typing import Optional

from anakin_tdmpc.config import Args, numeric_fields
from anakin_tdmpc.errors import ConfigError


def parse_flags(cls, argv: list[str], prog: str, kinds: Optional[dict[str, str]] = None):
    """A dataclass `cls` from command-line flags with tyro, numeric flags checked first (see
    normalise_numeric_argv; `kinds`: field -> "int" / "float", default Args'). --help prints and exits 0; any
    error raises ConfigError with the one line that says what is wrong."""
    import tyro

    argv = normalise_numeric_argv(argv, kinds)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=argv, use_underscores=True, prog=prog)
    except SystemExit as e:
        if not e.code:  # --help
            sys.stderr.write(captured.getvalue())
            raise
        # tyro draws its error in a box: keep the line that says what is wrong
        lines = [line.strip(" \t│╭╮╰╯─|+-") for line in captured.getvalue().splitlines()]
        reason = next((line for line in lines if ": " in line), "could not parse the command line")
        raise ConfigError(f"{reason} (see --help)") from None


def normalise_numeric_argv(argv: list[str], kinds: Optional[dict[str, str]] = None) -> list[str]:
    """Checks every numeric flag's value on the command line before it is parsed -> argv, with integer flags
    written in float notation (`--total_timesteps 1e6`, `2.0`) turned into plain integers when exact.

    Raises ConfigError naming the flag and its value for a value that is not a number, a non-integer given to
    an integer flag (`--batch_size 2.5`), a number that is not finite (`--lr nan`, `--utd inf`), or a flag
    with no value."""
    kinds, out, i = kinds or numeric_fields(), [], 0
    while i < len(argv):
        token = argv[i]
        name, value, inline = None, None, False
        if token.startswith("--"):
            flag, sep, rest = token[2:].partition("=")
            if flag.replace("-", "_") in kinds:
                name, inline = flag.replace("-", "_"), bool(sep)
                if inline:
                    value = rest
                elif i + 1 < len(argv) and not (argv[i + 1].startswith("--") and not _is_number(argv[i + 1])):
                    value = argv[i + 1]
                else:
                    raise ConfigError(f"--{name} needs a value")
        if name is None:
            out.append(token)
            i += 1
            continue
        value = _check_number(name, kinds[name], value)
        out += [f"--{name}={value}"] if inline else [token, value]
        i += 1 if inline else 2
    return out


def explicit_flags(argv: list[str]) -> set[str]:
    """Args fields named on a command line (`--num_envs 8`, `--lr=1e-3`, `--no_planner_bf16`)."""
    names = {f.name for f in dataclasses.fields(Args)}
    found = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].partition("=")[0].replace("-", "_")
            if name.startswith("no_") and name[3:] in names:
                name = name[3:]
            if name in names:
                found.add(name)
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_number(name: str, kind: str, text: str) -> str:
    if text == "None":
        return text  # an optional flag set back to its default
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"--{name} expects {'an integer' if kind == 'int' else 'a number'}, got {text!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"--{name} must be a finite number, got {text!r}")
    if kind == "float":
        return text
    try:
        return str(int(text))
    except ValueError:
        pass
    if number != int(number):
        raise ConfigError(f"--{name} expects an integer, got {text!r}")
    return str(int(number))  # 1e6 -> 1000000
