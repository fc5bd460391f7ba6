# Helpers for scenarios: start/stop berthd instances, run the CLI against one,
# and assert. Every instance lives under $WORK/<name>/ and is stopped by pid.

# start_berthd NAME [extra berthd args...]: starts and waits until it answers.
start_berthd() {
  local name=$1; shift
  local dir=$WORK/$name
  mkdir -p "$dir"
  rm -f "$dir/net-cleaned"
  [ -f "$dir/daemon.json" ] || echo '{}' > "$dir/daemon.json"
  "$BERTHD" -H "unix://$dir/berth.sock" --data-root "$dir/data" --exec-root "$dir/exec" \
    --config-file "$dir/daemon.json" --log-level debug "$@" >>"$dir/berthd.log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$PIDFILE"
  echo "$pid" > "$dir/pid"
  # START_WAIT: seconds to wait for it to answer (a start after a kill
  # repairs first).
  for _ in $(seq $(( ${START_WAIT:-10} * 20 ))); do
    if curl -sf --unix-socket "$dir/berth.sock" http://berth/_ping >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "berthd $name exited early:"; cat "$dir/berthd.log"; return 1; }
    sleep 0.05
  done
  echo "berthd $name did not answer"; cat "$dir/berthd.log"; return 1
}

# stop_berthd NAME [SIGNAL]: signals it and waits; its exit code is left in
# STOP_CODE (128+n when killed by signal n). Call it from the scenario's own shell.
stop_berthd() {
  local name=$1 sig=${2:-TERM} pid
  pid=$(cat "$WORK/$name/pid")
  kill "-$sig" "$pid"
  STOP_CODE=0
  wait "$pid" 2>/dev/null || STOP_CODE=$?
}

sock() { echo "$WORK/$1/berth.sock"; }
# d NAME args...: the docker CLI against instance NAME.
d() { local name=$1; shift; docker -H "unix://$(sock "$name")" "$@"; }
api() { local name=$1; shift; curl -s --unix-socket "$(sock "$name")" "$@"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

fail() { echo "assertion failed: $*"; return 1; }
expect_eq() { [ "$1" == "$2" ] || fail "expected [$2], got [$1]${3:+ ($3)}"; }
expect_contains() { [[ $1 == *"$2"* ]] || fail "expected output to contain [$2]; output was:
$1"; }
