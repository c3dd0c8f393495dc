"""`.ci/uv.sh` finds or installs uv on machines unlike this one: a Debian/Ubuntu Python that is "externally
managed" (PEP 668), one without pip. Each case runs the script with stand-in `python3` / `apt-get` / `curl`
programs on PATH that record how they were called and act like the real ones would."""

import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a python3 that has no uv; its pip (if any) refuses user installs unless PEP 668 is overridden (if managed),
# and "installs" uv by creating $HOME/.local/bin/uv
PYTHON3 = """#!/bin/bash
echo "python3 $*" >> "$CALLS"
if [ "$1 $2" = "-m uv" ]; then exit 1; fi
if [ "$1 $2" = "-m pip" ]; then
  [ -e "$STATE/has_pip" ] || exit 1
  [ "$3" = "--version" ] && exit 0
  if [ -e "$STATE/managed" ] && [[ " $* " != *" --break-system-packages "* ]]; then
    echo "error: externally-managed-environment" >&2; exit 1
  fi
  mkdir -p "$HOME/.local/bin"; printf '#!/bin/sh\\necho uv 0.0.0\\n' > "$HOME/.local/bin/uv"; chmod +x "$HOME/.local/bin/uv"
  exit 0
fi
exit 1
"""
APT_GET = """#!/bin/bash
echo "apt-get $*" >> "$CALLS"
[ "$1" = "install" ] && touch "$STATE/has_pip"
exit 0
"""
CURL = """#!/bin/bash
echo "curl $*" >> "$CALLS"
printf 'mkdir -p "$HOME/.cargo/bin"; printf "#!/bin/sh\\\\necho uv\\\\n" > "$HOME/.cargo/bin/uv"; chmod +x "$HOME/.cargo/bin/uv"\\n'
"""


def _run(tmp_path, *, pip, managed, root, curl=True):
    bin_dir, state, home = tmp_path / "bin", tmp_path / "state", tmp_path / "home"
    for d in (bin_dir, state, home):
        d.mkdir()
    programs = {"python3": PYTHON3, "apt-get": APT_GET if root else None, "curl": CURL if curl else None,
                "id": "#!/bin/sh\necho %d\n" % (0 if root else 1000)}
    for name, text in programs.items():
        if text is not None:
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(stat.S_IRWXU)
    if pip:
        (state / "has_pip").touch()
    if managed:
        (state / "managed").touch()
    calls = tmp_path / "calls"
    script = textwrap.dedent(f"""
        set -euo pipefail
        source {ROOT / '.ci' / 'uv.sh'}
        echo "UV=${{UV[*]}}"
    """)
    tools = tmp_path / "tools"  # the only real programs on PATH: no real uv, pip, apt-get or curl can be found
    tools.mkdir()
    for name in ("mkdir", "chmod", "touch", "sh", "cat", "bash"):
        (tools / name).symlink_to(shutil.which(name))
    env = {"PATH": f"{bin_dir}:{tools}", "HOME": str(home), "STATE": str(state), "CALLS": str(calls)}
    out = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, env=env)
    return out, (calls.read_text().splitlines() if calls.exists() else [])


def test_plain_pip_user_install(tmp_path):
    out, calls = _run(tmp_path, pip=True, managed=False, root=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"UV={tmp_path / 'home' / '.local' / 'bin' / 'uv'}"
    assert "python3 -m pip install --quiet --user uv" in calls


def test_externally_managed_python(tmp_path):
    out, calls = _run(tmp_path, pip=True, managed=True, root=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"UV={tmp_path / 'home' / '.local' / 'bin' / 'uv'}"
    assert "python3 -m pip install --quiet --user --break-system-packages uv" in calls


def test_no_pip_as_root_installs_debians_pip(tmp_path):
    out, calls = _run(tmp_path, pip=False, managed=True, root=True)
    assert out.returncode == 0, out.stderr
    assert any(c.startswith("apt-get install -y -qq python3-pip") for c in calls)
    assert out.stdout.strip() == f"UV={tmp_path / 'home' / '.local' / 'bin' / 'uv'}"


def test_no_pip_no_root_uses_the_standalone_installer(tmp_path):
    out, calls = _run(tmp_path, pip=False, managed=False, root=False)
    assert out.returncode == 0, out.stderr
    assert any(c.startswith("curl -LsSf https://astral.sh/uv/install.sh") for c in calls)
    assert out.stdout.strip() == f"UV={tmp_path / 'home' / '.cargo' / 'bin' / 'uv'}"


def test_nothing_works_is_one_error_line(tmp_path):
    out, _ = _run(tmp_path, pip=False, managed=False, root=False, curl=False)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("error: could not install uv")


def test_python_is_pinned_and_hung_tests_time_out():
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11,<3.13"
    assert project["tool"]["pytest"]["ini_options"]["timeout"] > 0
