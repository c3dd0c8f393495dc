# Sourced by .ci/run: sets UV to a working uv command, installing uv first if there is none.
# Works on a fresh Debian/Ubuntu machine with only python3: uv comes from pip (a user install, or past PEP 668's
# "externally managed" guard), from Debian's python3-pip when pip itself is missing (as root), or from uv's
# standalone installer.

find_uv() {
  if command -v uv >/dev/null 2>&1; then UV=(uv)
  elif python3 -m uv --version >/dev/null 2>&1; then UV=(python3 -m uv)
  elif [ -x "$HOME/.local/bin/uv" ]; then UV=("$HOME/.local/bin/uv")
  elif [ -x "$HOME/.cargo/bin/uv" ]; then UV=("$HOME/.cargo/bin/uv")
  else return 1
  fi
}

pip_install_uv() {
  python3 -m pip install --quiet --user uv 2>/dev/null && return
  python3 -m pip install --quiet --user --break-system-packages uv 2>/dev/null && return
  python3 -m pip install --quiet --break-system-packages uv 2>/dev/null
}

install_uv() {
  if python3 -m pip --version >/dev/null 2>&1; then
    pip_install_uv && return
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null && pip_install_uv && return
  fi
  if command -v curl >/dev/null 2>&1; then
    curl -LsSf https://astral.sh/uv/install.sh | sh && return
  fi
  echo "error: could not install uv (no pip, no apt-get as root, no curl); see https://docs.astral.sh/uv/" >&2
  return 1
}

find_uv || { install_uv && find_uv; }
