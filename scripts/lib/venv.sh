# Shell function for the cached Python virtualenvs the tests and benches use (sourced by
# scripts/*.sh and bench/*.sh); bridge itself does not need Python.
#   cached_venv WHO VENV CHECK PIP_SPEC
#     prints VENV/bin/python once `python -c CHECK` succeeds in VENV, making VENV first if needed
#     (python3 -m venv, then pip install PIP_SPEC; only the first run downloads). Returns
#     non-zero, saying why on stderr as WHO (no python3/venv, no network to PyPI), and leaves no
#     half-made VENV behind.
cached_venv() {
  local who="$1" venv="$2" check="$3" spec="$4"
  local py="$venv/bin/python"
  if [ -x "$py" ] && "$py" -c "$check" >/dev/null 2>&1; then
    echo "$py"
    return 0
  fi
  command -v python3 >/dev/null || { echo "$who: python3 is not installed" >&2; return 1; }
  mkdir -p "$(dirname "$venv")"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    echo "$who: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    rm -rf "$venv"
    return 1
  fi
  if ! "$venv/bin/pip" install --disable-pip-version-check -q "$spec" >&2; then
    echo "$who: pip install $spec failed (is PyPI reachable?)" >&2
    rm -rf "$venv"
    return 1
  fi
  echo "$py"
}
