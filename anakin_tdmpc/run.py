"""`python -m anakin_tdmpc.run`: the command line. Flags -> Args (with --preset) -> session.trainer.train;
bad input and runs that stop early print one line and exit with the run's code (docs/outputs-and-resume.md: exit codes).

A run writes <run_dir>/config.json, metrics.jsonl, curves.png, checkpoints/ (and videos/ with
--capture_video, wandb with --track); --resume continues a run exactly from its latest checkpoint."""

from __future__ import annotations

import sys


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def parse_args(argv=None):
    """Parse flags with tyro, then fill the flags not given from --preset; a parsing error becomes one
    `error: ...` line and exit code 2."""
    from anakin_tdmpc.cli import explicit_flags, parse_flags
    from anakin_tdmpc.config import Args, ConfigError, apply_preset

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        from anakin_tdmpc.help import format_help

        print(format_help(Args), end="")
        raise SystemExit(0)
    try:
        args = parse_flags(Args, argv, "python -m anakin_tdmpc.run")
        return apply_preset(args, explicit_flags(argv))  # flags given on the command line win over the preset's
    except ConfigError as e:
        _fail(str(e))


def main(argv=None) -> None:
    from anakin_tdmpc.session.run_dir import RunError
    from anakin_tdmpc.session.trainer import train

    args = parse_args(argv)
    try:
        train(args)
    except RunError as e:
        if e.exit_code > 128:  # stopped by a signal, checkpoint saved: not an error
            print(str(e), file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:  # Ctrl-C while setting up / compiling, or a second Ctrl-C while training
        print("stopped by SIGINT at once: nothing saved since the last checkpoint", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
