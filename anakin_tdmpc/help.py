"""`python -m anakin_tdmpc.run --help`: the flags of `Args` in groups, each with its docstring as whole
sentences wrapped to the terminal, its default shown once, and two examples.

tyro (which parses the flags) groups only by nested dataclasses, and `Args` is flat so that `Args(task=...)`
stays the Python API; the groups are this table instead. A field the table does not name is still shown, under
"other", so a flag added to `Args` is never hidden (tests/test_cli.py checks that the table names every one)."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import shutil
import textwrap
import typing

PROG = "python -m anakin_tdmpc.run"

# group -> its fields in order; a name Args does not have is skipped, a field of Args named nowhere goes to OTHER
GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("algo", "task", "preset", "total_timesteps", "seed", "run_dir", "resume"),
    "environment and schedule": ("num_envs", "action_repeat", "episode_length", "utd", "seed_steps"),
    "model": ("model_size", "enc_dim", "mlp_dim", "latent_dim", "num_q", "num_enc_layers", "lr"),
    "planner": ("horizon", "iterations", "num_samples", "num_elites", "num_pi_trajs", "planner_bf16"),
    "replay": ("buffer_size", "batch_size"),
    "evaluation and logging": ("eval_every", "eval_episodes", "log_every", "capture_video", "tensorboard", "track",
                               "wandb_project", "wandb_entity", "wandb_group"),
    "checkpoints and stopping": ("checkpoint_every", "keep_checkpoints", "max_chunk_seconds"),
    "scale-out": ("num_devices", "num_seeds", "coordinator_address", "num_processes", "process_id"),
}
OTHER = "other"

EXAMPLES = (
    ("learn cartpole-balance on a CPU in about four minutes",
     f"{PROG} --preset cpu-small --task cartpole-balance \\\n      --total_timesteps 20000 --seed_steps 1000 "
     "--eval_every 10000 --eval_episodes 8"),
    ("the paper's setting on a GPU, four seeds in one program, resumable",
     f"{PROG} --task walker-walk --num_seeds 4 --run_dir runs/walker-walk --resume"),
)


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal right after its annotation in the class body (what tyro shows too), over
    ``cls`` and its dataclass bases; a class whose source cannot be read adds nothing."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):
            continue
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def grouped(cls: type) -> dict[str, list[str]]:
    """Group -> the fields of ``cls`` in it, in the table's order; fields the table does not name go to "other"."""
    names = [f.name for f in dataclasses.fields(cls)]
    out = {group: [n for n in fields if n in names] for group, fields in GROUPS.items()}
    known = {n for fields in GROUPS.values() for n in fields}
    out[OTHER] = [n for n in names if n not in known]
    return {group: fields for group, fields in out.items() if fields}


def _metavar(annotation) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return {int: "INT", float: "FLOAT", str: "STR"}.get(args[0], "VALUE")


def _sentence(text: str) -> str:
    """``text`` as a sentence: a capital first letter (unless the first word is a name such as tdmpc2) and a
    full stop."""
    text = text.strip()
    if not text:
        return ""
    first = text.split()[0]
    if first.isalpha() and first.islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _entry(field: dataclasses.Field, annotation, doc: str) -> tuple[str, str]:
    """(the flag as typed, its help: the docstring as sentences and the default, shown once)."""
    if annotation is bool or annotation == "bool":
        flag = f"--{field.name} / --no_{field.name}"
        default = "on" if field.default else "off"
    else:
        flag = f"--{field.name} {_metavar(annotation)}"
        default = field.default if field.default is None or not isinstance(field.default, int) else f"{field.default:,}"
    text = _sentence(doc)
    if default is not None and "default" not in doc.lower():  # a docstring that names its default says it once
        text += f" Default: {default}."
    elif "default" not in doc.lower():
        text += " Default: none."
    return flag, text.strip()


def format_help(cls: type, width: int | None = None) -> str:
    width = max(60, min(width or shutil.get_terminal_size((100, 24)).columns, 120))
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    wrap = functools.partial(textwrap.fill, width=width, break_on_hyphens=False, break_long_words=False)
    # the first docstring of cls or a base that dataclasses did not write (theirs is the signature)
    about = next(k.__doc__ for k in cls.__mro__ if k.__doc__ and not k.__doc__.startswith(k.__name__ + "("))
    out = [f"usage: {PROG} [--FLAG VALUE ...]", "", wrap(_sentence(about)),
           wrap("Flags given explicitly win over --preset's values. -h, --help shows this text.")]
    for group, names in grouped(cls).items():
        out += ["", f"{group}:"]
        for name in names:
            flag, text = _entry(fields[name], hints[name], docs.get(name, ""))
            out.append(f"  {flag}")
            out.append(wrap(text, initial_indent="      ", subsequent_indent="      "))
    out += ["", "examples:"]
    for what, command in EXAMPLES:
        out += [f"  # {what}", f"  {command}"]
    return "\n".join(out) + "\n"
