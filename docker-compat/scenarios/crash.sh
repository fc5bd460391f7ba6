# Crash consistency: berthd is SIGKILLed at random moments while clients
# create, start, rename, connect, stop and remove containers, and started
# again. Afterwards every acknowledged operation holds, a cut one is done or
# undone (never half), containers that ran through the kills are the same
# processes with every line they printed, and nothing is left on the host.

CRASH_CYCLES=${CRASH_CYCLES:-30}

# crash_cli ARGS...: the docker CLI against the crash instance, bounded.
crash_cli() { timeout 30 docker -H "unix://$WORK/crash/berth.sock" "$@"; }

# crash_step JOURNAL LINEAGE STEP CMD...: runs CMD; the journal gets
# "LINEAGE STEP ok OUTPUT" when the daemon acknowledged it, "LINEAGE STEP cut"
# when not (refused, or cut by a kill: then it may or may not have happened).
crash_step() {
  local j=$1 lineage=$2 step=$3 out; shift 3
  if out=$("$@" 2>/dev/null); then
    echo "$lineage $step ok ${out//$'\n'/ }" >> "$j"
  else
    echo "$lineage $step cut" >> "$j"
    return 1
  fi
}

# crash_worker W PARENT: lineages wN-K, each created as wN-K, started,
# renamed wN-Kr, connected to crashnet, stopped and removed; a lineage ends
# at its first operation that is not acknowledged. It stops when told, or
# when the scenario (PARENT) is gone: a failed one must not leave it writing.
crash_worker() {
  set +e
  local w=$1 parent=$2 j=$WORK/crash/journal.$1 n=0
  while [ ! -e "$WORK/crash/stop-workers" ] && kill -0 "$parent" 2>/dev/null; do
    n=$((n + 1))
    local a=w$w-$n b=w$w-${n}r
    if crash_step "$j" "$a" 1 crash_cli create --name "$a" -p 127.0.0.1::80 busybox \
         sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done' &&
       crash_step "$j" "$a" 2 crash_cli start "$a" &&
       crash_step "$j" "$a" 3 crash_cli rename "$a" "$b" &&
       crash_step "$j" "$a" 4 crash_cli network connect crashnet "$b" &&
       crash_step "$j" "$a" 5 crash_cli stop -t 2 "$b" &&
       crash_step "$j" "$a" 6 crash_cli rm "$b"; then
      :
    else
      sleep 0.1
    fi
  done
}

# crash_state LINEAGE STEP: what `inspect` shows of a lineage after STEP
# (":ip": the network gave it an address, as each does while it runs).
crash_state() {
  local a=$1 b=${1}r
  case $2 in
    0|6) echo "none" ;;
    1) echo "/$a created bridge" ;;
    2) echo "/$a running bridge:ip" ;;
    3) echo "/$b running bridge:ip" ;;
    4) echo "/$b running bridge:ip crashnet:ip" ;;
    5) echo "/$b exited bridge crashnet" ;;
  esac
}

# crash_our_port_rules: our chains' rules for a published port 80.
crash_our_port_rules() {
  iptables-save | grep -- "BERTH-$(printf '%s' "$WORK/crash/data" | sha256sum | cut -c1-6)" |
    grep -c -- "--dport 80 " || true
}

# crash_links BRIDGE: how many links the bridge has.
crash_links() { ip -o link show master "$1" | wc -l; }

# crash_until CMD WANT WHAT: until CMD prints WANT (10 s).
crash_until() {
  local got
  for _ in $(seq 100); do
    got=$($1) && [ "$got" == "$2" ] && return 0
    sleep 0.1
  done
  fail "$3: expected [$2], got [$got]"
}

scenario_crash_kill_cycles_lose_nothing_and_leave_nothing() {
  local started=$SECONDS
  start_berthd crash --registry-mirror "http://$REG"
  d crash pull -q busybox >/dev/null
  d crash network create crashnet >/dev/null
  # Runs through every kill: prints a counter ten times a second.
  d crash run -d --name keep -p 127.0.0.1::80 busybox \
    sh -c 'i=0; while :; do echo $i; i=$((i + 1)); sleep 0.1; done' >/dev/null
  local keep_pid keep_rules
  keep_pid=$(d crash inspect -f '{{.State.Pid}}' keep)
  keep_rules=$(crash_our_port_rules)
  [ "$keep_rules" -gt 0 ] || fail "no rule for keep's published port"

  local workers=() w
  for w in 1 2 3; do
    crash_worker "$w" "$BASHPID" &
    workers+=($!)
  done
  local cycle
  for cycle in $(seq "$CRASH_CYCLES"); do
    sleep "0.$((RANDOM % 9 + 1))"
    if [ "$cycle" -eq "$CRASH_CYCLES" ]; then
      # The last kill comes while these run; they end before the restart.
      d crash run -d --name exits7 busybox sh -c 'sleep 0.5; exit 7' >/dev/null
      d crash run -d --rm --name gone busybox sh -c 'sleep 0.5' >/dev/null
      d crash run -d --name again --restart on-failure:1 busybox sh -c 'sleep 0.5; exit 3' >/dev/null
    fi
    stop_berthd crash KILL
    if [ "$cycle" -eq "$CRASH_CYCLES" ]; then sleep 1.5; else sleep "0.$((RANDOM % 3))"; fi
    START_WAIT=90 start_berthd crash --registry-mirror "http://$REG"
  done
  touch "$WORK/crash/stop-workers"
  for w in "${workers[@]}"; do wait "$w" || true; done
  echo "cycles done after $((SECONDS - started)) s"

  # Every container listed can be inspected, and no name is held twice.
  local ids names
  ids=$(d crash ps -aq --no-trunc)
  names=$(d crash ps -a --format '{{.Names}}' | sort)
  expect_eq "$(uniq -d <<<"$names")" "" "names held twice"
  local shown
  # shellcheck disable=SC2086
  shown=$(d crash inspect -f '{{.Name}} {{.State.Status}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{if $v.IPAddress}}:ip{{end}} {{end}}' $ids) ||
    fail "a listed container cannot be inspected"
  declare -A state_of
  local line
  while read -r line; do
    line=${line% }
    local name=${line%% *}
    state_of[${name#/}]=$line
  done <<<"$shown"

  # Each lineage shows its last acknowledged step, or the step cut after it.
  local lineages=0 cut_done=0 problems=""
  declare -A seen
  local l
  for l in $(cat "$WORK"/crash/journal.* | awk '{print $1}' | sort -u); do
    lineages=$((lineages + 1))
    local last ok_step cut_step got want1 want2
    ok_step=$(awk -v l="$l" '$1 == l && $3 == "ok" {s = $2} END {print s + 0}' "$WORK"/crash/journal.*)
    cut_step=$(awk -v l="$l" '$1 == l && $3 == "cut" {print $2}' "$WORK"/crash/journal.*)
    got=${state_of[$l]:-${state_of[${l}r]:-none}}
    seen[$l]=1; seen[${l}r]=1
    want1=$(crash_state "$l" "$ok_step")
    want2=$want1
    [ -n "$cut_step" ] && want2=$(crash_state "$l" "$cut_step")
    if [ "$got" != "$want1" ] && [ "$got" != "$want2" ]; then
      problems+="$l: after step $ok_step (cut: ${cut_step:-none}) shows [$got], wanted [$want1] or [$want2]"$'\n'
    elif [ -n "$cut_step" ] && [ "$got" == "$want2" ] && [ "$want1" != "$want2" ]; then
      cut_done=$((cut_done + 1))
    fi
  done
  echo "$lineages lineages; $cut_done operations cut by a kill were done"
  [ -z "$problems" ] || fail "operations half done or lost:
$problems"
  local n
  for n in $names; do
    case $n in keep|exits7|again) ;; *) [ -n "${seen[$n]:-}" ] || fail "container $n was never asked for" ;; esac
  done

  # keep ran through every kill: the same process, and every line it
  # printed, those of the daemon's absences too.
  expect_eq "$(d crash inspect -f '{{.State.Status}} {{.State.Pid}}' keep)" "running $keep_pid"
  local counted
  counted=$(d crash logs keep | awk 'NR - 1 != $1 { print "line " NR " is [" $0 "]"; exit } END { if (NR < 50) print NR " lines" }')
  expect_eq "$counted" "" "keep's log"
  # Those that ended while no daemon watched: their own exit code, their
  # restart policy and --rm applied.
  wait_for crash exits7 '{{.State.Status}} {{.State.ExitCode}}' "exited 7"
  wait_for crash again '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "exited 3 1"
  for _ in $(seq 100); do d crash inspect gone >/dev/null 2>&1 || break; sleep 0.1; done
  d crash inspect gone >/dev/null 2>&1 && fail "the --rm container that ended meanwhile is still there"

  # Nothing of the workers' containers is left on the host once they are
  # removed: no bundle, shim, namespace, mount, veth, cgroup or rule.
  local worker_ids
  local left_names
  left_names=$(grep '^w' <<<"$names" || true)
  worker_ids=$( (cat "$WORK"/crash/journal.* | awk '$2 == 1 && $3 == "ok" {print $4}'
    # shellcheck disable=SC2086
    [ -z "$left_names" ] || d crash inspect -f '{{.Id}}' $left_names) | sort -u)
  # shellcheck disable=SC2086
  [ -z "$left_names" ] || d crash rm -f $left_names >/dev/null
  d crash rm -f exits7 again >/dev/null
  local running
  running=$(d crash ps -q --no-trunc)
  expect_eq "$(d crash ps -aq --no-trunc)" "$running" "only keep is left"
  expect_eq "$(ls "$WORK/crash/exec/containers")" "$running" "bundles"
  expect_eq "$(ls "$WORK/crash/exec/netns")" "${running:0:12}" "network namespaces"
  local shims; shims=$(pgrep -fa -- "-shim $WORK/crash/exec/containers/" | sed 's|.*/||' | grep -v -- "$running" || true)
  if [ -n "$shims" ]; then
    for id in $shims; do grep -- "${id:0:12}" "$WORK/crash/berthd.log" | grep -v DEBUG | tail -8; ls -la "$WORK/crash/exec/containers/$id" 2>&1 | head -3; done
    cp "$WORK/crash/berthd.log" /tmp/crash-berthd.log
  fi
  expect_eq "$shims" "" "shims of no running container"
  local mounts
  mounts=$(awk -v w="$WORK/crash/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | grep -v -- "${running:0:12}" || true)
  expect_eq "$mounts" "" "mounts of no running container"
  local tag; tag=$(printf '%s' "$WORK/crash/data" | sha256sum | cut -c1-6)
  crash_until "crash_links berth-$tag" "1" "veths on the default bridge"
  local crashnet; crashnet=$(d crash network inspect -f '{{.Id}}' crashnet)
  crash_until "crash_links br-${crashnet:0:12}" "0" "veths on crashnet"
  # Rules and links go in the background after an exit (the kernel ends a
  # namespace's links once its last process is gone): a few seconds at most.
  crash_until crash_our_port_rules "$keep_rules" "published-port rules"
  local id left=""
  for id in $worker_ids; do
    # cgroup v1 hierarchies, or the v2 tree.
    if compgen -G "/sys/fs/cgroup/*/berth/$id" >/dev/null || [ -e "/sys/fs/cgroup/berth/$id" ]; then left+="$id "; fi
  done
  expect_eq "$left" "" "cgroups of removed containers"
  echo "done after $((SECONDS - started)) s"
}
