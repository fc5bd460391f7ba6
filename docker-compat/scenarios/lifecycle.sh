# Restart policies, and a daemon that is stopped or killed while its
# containers run: the containers go on, and the next daemon takes them back.

# wait_for NAME CONTAINER FORMAT WANT: until inspect's FORMAT gives WANT (10 s).
wait_for() {
  local got
  for _ in $(seq 100); do
    got=$(d "$1" inspect -f "$3" "$2" 2>/dev/null) || true
    [ "$got" == "$4" ] && return 0
    sleep 0.1
  done
  fail "$2: $3 stayed [$got], wanted [$4]"
}

scenario_on_failure_restarts_a_failing_container_up_to_its_count() {
  start_with_busybox rp
  d rp run -d --name flaky --restart on-failure:2 busybox sh -c 'echo run; exit 3' >/dev/null
  wait_for rp flaky '{{.State.Status}} {{.RestartCount}}' "exited 2"
  expect_eq "$(d rp inspect -f '{{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}' flaky)" "3 on-failure"
  # Three runs, each in the log.
  expect_eq "$(d rp logs flaky | grep -c run)" "3"
  # A success is not restarted by on-failure.
  d rp run -d --name fine --restart on-failure busybox true >/dev/null
  sleep 1
  expect_eq "$(d rp inspect -f '{{.State.Status}} {{.RestartCount}}' fine)" "exited 0"
  d rp rm flaky fine >/dev/null
}

scenario_always_restarts_until_stopped_and_docker_stop_ends_it() {
  start_with_busybox ra
  d ra run -d --name loop --restart always busybox sh -c 'sleep 0.2' >/dev/null
  for _ in $(seq 100); do
    [ "$(d ra inspect -f '{{.RestartCount}}' loop)" -ge 2 ] && break
    sleep 0.1
  done
  [ "$(d ra inspect -f '{{.RestartCount}}' loop)" -ge 2 ] || fail "always did not restart an exit 0"
  # A restarting container counts as running: rm without -f is refused.
  d ra stop -t 1 loop >/dev/null
  expect_eq "$(d ra inspect -f '{{.State.Status}} {{.State.Restarting}}' loop)" "exited false"
  local n; n=$(d ra inspect -f '{{.RestartCount}}' loop)
  sleep 1
  expect_eq "$(d ra inspect -f '{{.State.Status}} {{.RestartCount}}' loop)" "exited $n" "restarted after docker stop"
  # A user's start resets the count, as dockerd does.
  d ra start loop >/dev/null
  expect_eq "$(d ra inspect -f '{{.RestartCount}}' loop)" "0"
  d ra rm -f loop >/dev/null
  # The delay grows: a container that always fails fast is seen restarting.
  d ra run -d --name fast --restart always busybox false >/dev/null
  # ps and rm race the next run: one that lands in the brief moment `false`
  # runs sees it Up, or is refused as running (dockerd's words too), so try
  # again at the next wait.
  local out listed
  for _ in 1 2 3 4 5 6; do
    wait_for ra fast '{{.State.Restarting}}' "true"
    listed=$(d ra ps --format '{{.Names}} {{.Status}}')
    case "$listed" in *"fast Up"*) continue ;; esac
    if out=$(d ra rm fast 2>&1); then fail "rm of a restarting container was accepted"; fi
    case "$out" in *"You cannot remove a running container"*) continue ;; esac
    break
  done
  expect_contains "$listed" "fast Restarting (1)"
  expect_contains "$out" "You cannot remove a restarting container"
  d ra rm -f fast >/dev/null
  expect_eq "$(d ra ps -aq)" ""
}

scenario_containers_outlive_a_killed_daemon_and_are_taken_back() {
  start_with_busybox lr
  d lr run -d --name keep busybox sh -c 'echo before; sleep 300' >/dev/null
  d lr run -d --name brief busybox sh -c 'sleep 2; echo done; exit 7' >/dev/null
  local pid; pid=$(d lr inspect -f '{{.State.Pid}}' keep)
  stop_berthd lr KILL
  sleep 3
  kill -0 "$pid" || fail "the container died with the daemon"
  start_berthd lr --registry-mirror "http://$REG"
  # Still running, the same process; the one that ended meanwhile is exited
  # with its own code, and its output is in its log.
  expect_eq "$(d lr inspect -f '{{.State.Status}} {{.State.Pid}}' keep)" "running $pid"
  wait_for lr brief '{{.State.Status}} {{.State.ExitCode}}' "exited 7"
  expect_eq "$(d lr logs brief)" "done"
  expect_eq "$(d lr logs keep)" "before"
  expect_eq "$(d lr exec keep echo still)" "still"
  # The new daemon watches it: a stop is seen and recorded.
  d lr stop -t 1 keep >/dev/null
  expect_eq "$(d lr inspect -f '{{.State.Status}} {{.State.ExitCode}}' keep)" "exited 137"
  d lr rm keep brief >/dev/null
}

scenario_restart_policies_at_daemon_start() {
  start_with_busybox rs
  d rs run -d --name al --restart always busybox sleep 300 >/dev/null
  d rs run -d --name us --restart unless-stopped busybox sleep 300 >/dev/null
  d rs run -d --name us2 --restart unless-stopped busybox sleep 300 >/dev/null
  d rs run -d --name no busybox sleep 300 >/dev/null
  d rs stop -t 0 al us no >/dev/null
  local us2; us2=$(d rs inspect -f '{{.Id}}' us2)
  stop_berthd rs TERM
  # us2 is killed while no daemon watches: its policy brings it back.
  kill -KILL "$(cat "$WORK/rs/exec/containers/$us2/init.pid")"
  start_berthd rs --registry-mirror "http://$REG"
  # dockerd's rules: always comes back even after docker stop; unless-stopped
  # does not; no policy never does.
  wait_for rs al '{{.State.Status}}' "running"
  wait_for rs us2 '{{.State.Status}}' "running"
  expect_eq "$(d rs inspect -f '{{.State.Status}}' us)" "exited"
  expect_eq "$(d rs inspect -f '{{.State.Status}}' no)" "exited"
  d rs rm -f al us us2 no >/dev/null
}

scenario_update_changes_limits_of_a_running_container() {
  start_with_busybox up
  local id; id=$(d up run -d --name lim -m 64m --pids-limit 20 busybox sleep 300)
  d up update --memory 96m --memory-swap 192m --pids-limit 30 --cpus 0.5 --restart on-failure:3 lim >/dev/null
  expect_eq "$(d up inspect -f '{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}' lim)" "100663296 30 500000000 on-failure"
  # The running container's cgroup has them now.
  expect_eq "$(cat /sys/fs/cgroup/memory/berth/$id/memory.limit_in_bytes)" "100663296"
  expect_eq "$(cat /sys/fs/cgroup/pids/berth/$id/pids.max)" "30"
  expect_eq "$(cat /sys/fs/cgroup/cpu/berth/$id/cpu.cfs_quota_us)" "50000"
  # And the next start keeps them.
  d up restart -t 0 lim >/dev/null
  expect_eq "$(cat /sys/fs/cgroup/memory/berth/$id/memory.limit_in_bytes)" "100663296"
  local out
  if out=$(d up update --memory 1k lim 2>&1); then fail "a 1k memory limit was accepted"; fi
  expect_contains "$out" "Minimum memory limit allowed is 6MB"
  d up rm -f lim >/dev/null
}

scenario_runc_and_runtimes_from_daemon_json_run_the_same_bundle() {
  mkdir -p "$WORK/rt"
  echo '{"runtimes":{"myrunc":{"path":"'"$(command -v runc || echo /usr/sbin/runc)"'"}}}' > "$WORK/rt/daemon.json"
  start_with_busybox rt
  expect_eq "$(d rt run --rm busybox echo berth)" "berth"
  # The built-in runtime answers to runc's name, as dockerd's default does;
  # the host's runc is one more runtime of daemon.json's.
  expect_eq "$(d rt run --rm --runtime runc busybox echo runc)" "runc"
  d rt create --name dr busybox true >/dev/null
  expect_eq "$(d rt inspect -f '{{.HostConfig.Runtime}}' dr)" "runc"
  expect_eq "$(d rt info --format '{{.DefaultRuntime}}')" "runc"
  d rt rm dr >/dev/null
  d rt run -d --name mr --runtime myrunc busybox sleep 300 >/dev/null
  expect_eq "$(d rt inspect -f '{{.HostConfig.Runtime}} {{.State.Status}}' mr)" "myrunc running"
  # exec, pause and stop go through the container's own runtime.
  expect_eq "$(d rt exec mr echo in-runc)" "in-runc"
  d rt pause mr >/dev/null
  expect_eq "$(d rt inspect -f '{{.State.Status}}' mr)" "paused"
  d rt unpause mr >/dev/null
  d rt stop -t 1 mr >/dev/null
  expect_eq "$(d rt inspect -f '{{.State.Status}} {{.State.ExitCode}}' mr)" "exited 137"
  local out
  if out=$(d rt create --runtime nosuch busybox true 2>&1); then fail "an unknown runtime was accepted"; fi
  expect_contains "$out" "Unknown runtime specified nosuch"
  d rt rm mr >/dev/null
}

scenario_init_runs_as_pid_1_forwards_signals_and_reaps() {
  start_with_busybox in
  expect_eq "$(d in run --rm --init busybox sh -c 'cat /proc/1/comm')" "docker-init"
  local code=0
  d in run --rm --init busybox sh -c 'exit 3' || code=$?
  expect_eq "$code" "3"
  # sleep as pid 1 ignores SIGTERM (docker stop waits, then kills: 137);
  # under the init it gets the signal and ends at once (143).
  d in run -d --name sl --init busybox sleep 300 >/dev/null
  local t0=$SECONDS
  d in stop -t 20 sl >/dev/null
  expect_eq "$(d in inspect -f '{{.State.ExitCode}}' sl)" "143"
  [ $((SECONDS - t0)) -lt 10 ] || fail "stop waited for the timeout: the signal was not forwarded"
  # Orphans are reaped: no zombie stays.
  d in run -d --name rp --init busybox sh -c 'for i in 1 2 3; do (sleep 0.1 &) ; done; sleep 300' >/dev/null
  sleep 1
  expect_eq "$(d in exec rp sh -c 'grep -l "^State:.*Z" /proc/[0-9]*/status 2>/dev/null | wc -l' | tr -d ' ')" "0"
  d in rm -f sl rp >/dev/null
}

scenario_devices_and_group_names() {
  start_with_busybox dv
  expect_eq "$(d dv run --rm --device /dev/zero:/dev/myzero busybox sh -c 'stat -c "%t,%T" /dev/myzero; head -c 3 /dev/myzero | wc -c' | tr -d ' ')" "1,5
3"
  # Read only: the cgroup refuses a write.
  local out code=0
  out=$(d dv run --rm --device /dev/kmsg:/dev/rokmsg:r busybox sh -c 'echo berth-test > /dev/rokmsg' 2>&1) || code=$?
  [ "$code" -ne 0 ] || fail "a read-only device took a write"
  expect_contains "$out" "Operation not permitted"
  if out=$(d dv run --rm --device /nonexistent busybox true 2>&1); then fail "a missing device was accepted"; fi
  expect_contains "$out" "error gathering device information"
  # --group-add takes the image's group names, as dockerd does.
  # The primary group first, as runc (the reference dockerd: groups=0(root),1(daemon),10(wheel),123
  # on Docker Hub's busybox, whose /etc/group lists root in wheel; the fixture's does not).
  expect_eq "$(d dv run --rm --group-add daemon --group-add 123 busybox id)" "uid=0(root) gid=0(root) groups=0(root),1(daemon),123"
  if out=$(d dv run --rm --group-add nosuchgrp busybox id 2>&1); then fail "an unknown group was accepted"; fi
  expect_contains "$out" "Unable to find group nosuchgrp: no matching entries in group file"
}

scenario_rm_force_during_a_start_leaves_nothing_running() {
  start_with_busybox rmst
  local i
  for i in $(seq 8); do
    d rmst create --name s$i busybox sleep 300 >/dev/null
    d rmst start s$i >/dev/null 2>&1 &
    local starting=$!
    sleep "0.0$((RANDOM % 5))"
    d rmst rm -f s$i >/dev/null
    wait "$starting" || true
  done
  # As with dockerd, the removal waits for the start: nothing is left behind.
  expect_eq "$(d rmst ps -aq)" ""
  expect_eq "$(ls "$WORK/rmst/exec/containers")" ""
  expect_eq "$(pgrep -fc -- "$WORK/rmst/exec/containers/" || true)" "0"
}
