# Real Python clients from PyPI, each in a venv this suite makes once per
# machine (under BERTH_VENVS, default /var/cache/berth/venvs) and then reuses;
# scenarios running side by side wait for one another's install (flock).
#
#   py_client docker-py   # prints the venv's python, docker-py installed
BERTH_VENVS=${BERTH_VENVS:-/var/cache/berth/venvs}

py_client() {
  local name=$1 pins
  case $name in
    docker-py) pins="docker==7.1.0" ;;
    *) echo "py_client: unknown client $name" >&2; return 1 ;;
  esac
  local venv=$BERTH_VENVS/$name
  mkdir -p "$BERTH_VENVS"
  (
    flock 9
    if [ ! -e "$venv/.installed" ]; then
      rm -rf "$venv"
      python3 -m venv "$venv" >&2 &&
        "$venv/bin/pip" install -q --disable-pip-version-check $pins >&2 &&
        touch "$venv/.installed"
    fi
  ) 9>"$BERTH_VENVS/.$name.lock" || return 1
  echo "$venv/bin/python"
}
