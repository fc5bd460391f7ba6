# Container scenarios: the docker CLI creating, running and removing containers
# built from the fixture busybox image (pulled through $REG as a mirror).

# start_with_busybox NAME [berthd args]: a berthd whose docker.io mirror is $REG, with busybox pulled.
start_with_busybox() {
  start_berthd "$1" --registry-mirror "http://$REG" "${@:2}"
  d "$1" pull -q busybox >/dev/null
}

scenario_create_ps_inspect_rename_rm() {
  start_with_busybox ctr
  local id; id=$(d ctr create --name web -l tier=front busybox echo hi)
  expect_eq "${#id}" "64"
  expect_eq "$(d ctr ps -a --format '{{.Names}} {{.Command}} {{.Status}}')" 'web "echo hi" Created'
  expect_eq "$(d ctr ps -q)" ""
  expect_eq "$(d ctr ps -a --filter label=tier=front -q)" "${id:0:12}"
  expect_eq "$(d ctr inspect --format '{{.Name}} {{.State.Status}} {{.Config.Hostname}}' web)" "/web created ${id:0:12}"
  local out
  if out=$(d ctr create --name web busybox 2>&1); then fail "a taken name was accepted"; fi
  expect_contains "$out" 'Conflict. The container name "/web" is already in use by container'
  if out=$(d ctr rmi busybox 2>&1); then fail "an image in use was removed"; fi
  expect_contains "$out" "(must force) - container ${id:0:12} is using its referenced image"
  d ctr rename web front
  expect_eq "$(d ctr ps -a --format '{{.Names}}')" "front"
  d ctr rm front >/dev/null
  expect_eq "$(d ctr ps -aq)" ""
  expect_eq "$(ls "$WORK/ctr/data/containers")" ""
}

scenario_run_rm_prints_and_exit_codes() {
  start_with_busybox run
  expect_eq "$(d run run --rm busybox echo hi)" "hi"
  local code=0
  d run run --rm busybox sh -c 'exit 3' || code=$?
  expect_eq "$code" "3"
  local out
  out=$(d run run --rm busybox sh -c 'echo out; echo err >&2' 2>&1)
  expect_contains "$out" "out"
  expect_contains "$out" "err"
  code=0
  out=$(d run run --rm busybox nosuchbinary 2>&1) || code=$?
  expect_eq "$code" "127"
  expect_contains "$out" "executable file not found"
  expect_eq "$(d run ps -aq)" "$(d run ps -aq --filter status=created)"
  # Exactly dockerd's lines: no "Error waiting for container" before them
  # (a failed start ends no run, so the CLI's next-exit wait goes on).
  code=0
  out=$(d run run -d --name nope busybox /nonexistent 2>&1) || code=$?
  expect_eq "$code" "127"
  expect_eq "$(echo "$out" | tail -n +2)" 'docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/nonexistent": stat /nonexistent: no such file or directory: unknown

Run '"'docker run --help'"' for more information'
  d run rm nope >/dev/null
  # The container sees only its own processes.
  expect_eq "$(d run run --rm busybox ps -o pid= | tr -d ' ')" "1"
  expect_eq "$(d run run --rm busybox hostname | wc -c)" "13"
}

scenario_detached_logs_stop_wait() {
  start_with_busybox logs
  local id; id=$(d logs run -d --name counter busybox sh -c 'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done')
  sleep 1
  expect_eq "$(d logs ps --format '{{.Names}}')" "counter"
  expect_contains "$(d logs logs counter)" "line 0"
  expect_eq "$(d logs logs --tail 1 counter | wc -l)" "1"
  expect_contains "$(d logs logs -t --tail 1 counter)" "Z line"
  d logs stop -t 1 counter >/dev/null
  expect_eq "$(d logs inspect --format '{{.State.Status}}' counter)" "exited"
  expect_eq "$(d logs wait counter)" "137"
  [ -f "$WORK/logs/data/containers/$id/$id-json.log" ] || fail "no json-file log"
  d logs rm counter >/dev/null
}

scenario_kill_9_of_berthd_leaves_a_container_running_and_logging() {
  start_with_busybox live
  local id; id=$(d live run -d busybox sh -c 'while true; do echo tick; sleep 0.1; done')
  sleep 0.5
  local pid; pid=$(d live inspect -f '{{.State.Pid}}' "$id")
  stop_berthd live KILL
  local log="$WORK/live/data/containers/$id/$id-json.log"
  local before; before=$(wc -l < "$log")
  sleep 1
  local alive=no; [ -d "/proc/$pid" ] && alive=yes
  local after; after=$(wc -l < "$log")
  # Clean up what the daemon would have: the container (its shim then exits) and its mount.
  kill -9 "$pid" 2>/dev/null
  sleep 0.3
  umount -l "$WORK/live/data/overlay2/$id/merged" 2>/dev/null
  expect_eq "$alive" "yes"
  [ "$after" -gt "$before" ] || fail "the log stopped growing ($before -> $after lines)"
}

scenario_run_without_rm_limits_and_isolation() {
  start_with_busybox lim
  local code=0 out
  out=$(d lim run --name kept busybox sh -c 'echo kept; exit 5') || code=$?
  expect_eq "$out" "kept"
  expect_eq "$code" "5"
  expect_eq "$(d lim inspect -f '{{.State.Status}} {{.State.ExitCode}}' kept)" "exited 5"
  expect_eq "$(d lim run --rm -u nobody -w /tmp -e FOO=bar busybox sh -c 'id -u; pwd; echo $FOO' | tr '\n' ' ')" "65534 /tmp bar "
  if out=$(d lim run --rm --read-only busybox touch /x 2>&1); then fail "--read-only rootfs was writable"; fi
  expect_contains "$out" "Read-only file system"
  d lim run --rm busybox chown 1 /tmp || fail "chown with the default capabilities failed"
  if out=$(d lim run --rm --cap-drop ALL busybox chown 1 /tmp 2>&1); then fail "--cap-drop ALL kept CAP_CHOWN"; fi
  expect_contains "$out" "Operation not permitted"
  code=0
  d lim run --name oom -m 32m busybox sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a); echo ${#x}' >/dev/null 2>&1 || code=$?
  expect_eq "$code" "137"
  expect_eq "$(d lim inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' oom)" "true 137"
  out=$(d lim run --rm --pids-limit 20 busybox sh -c 'for i in $(seq 50); do sleep 5 & done; wait' 2>&1) || true
  expect_contains "$out" "can't fork"
}

scenario_whiteouts_seen_from_a_container() {
  start_berthd wh
  d wh pull -q "$REG/library/layers" >/dev/null
  expect_eq "$(d wh run --rm "$REG/library/layers" sh -c 'ls /data | tr "\n" " "; ls /opq | tr "\n" " "; cat /data/changed.txt')" "added2.txt changed.txt keep.txt new.txt layer2"
}
