# Details real programs check, as dockerd 20.10 answers them (issue 17's
# table; each expectation was read off the reference dockerd).

scenario_container_details_match_dockerd() {
  start_with_busybox dt
  local out rc
  # A file that is not executable: runc's "permission denied", exit 126.
  out=$(d dt run --rm busybox /etc/passwd 2>&1) && fail "ran a non-executable"
  rc=$?
  expect_eq "$rc" "126"
  expect_contains "$out" 'exec: "/etc/passwd": permission denied'
  # The container's own cgroups at /sys/fs/cgroup, read-only (v1 here).
  expect_eq "$(d dt run --rm -m 64m busybox cat /sys/fs/cgroup/memory/memory.limit_in_bytes)" "67108864"
  expect_eq "$(d dt run --rm --cpus 0.5 busybox cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)" "50000"
  out=$(d dt run --rm busybox sh -c 'echo 1 > /sys/fs/cgroup/pids/pids.max' 2>&1) && fail "a container raised its own limit"
  expect_contains "$out" "Read-only file system"
  # A missing working directory is made.
  expect_eq "$(d dt run --rm -w /tmp/new/dir busybox pwd)" "/tmp/new/dir"
  # --uts host: the host's name; the container's own stays in HOSTNAME.
  local id; id=$(d dt create --uts host busybox sh -c 'hostname; echo $HOSTNAME')
  expect_eq "$(d dt start -a "$id")" "$(hostname)
${id:0:12}"
  d dt rm "$id" >/dev/null
  # The default log driver is named; "none" keeps nothing to read.
  d dt create --name plain busybox >/dev/null
  expect_eq "$(d dt inspect -f '{{json .HostConfig.LogConfig}}' plain)" '{"Type":"json-file","Config":{}}'
  expect_eq "$(d dt info -f '{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}}')" "1 0 1"
  d dt run --name quiet --log-driver none busybox echo hi >/dev/null
  out=$(d dt logs quiet 2>&1) && fail "read the logs of a none driver"
  expect_eq "$out" "Error response from daemon: configured logging driver does not support reading"
  expect_eq "$(api dt -o /dev/null -w '%{http_code}' "http://berth/containers/quiet/logs?stdout=1")" "501"
  out=$(d dt run --rm --log-driver bogus busybox true 2>&1) && fail "an unknown log driver was accepted"
  expect_contains "$out" 'error looking up logging plugin bogus: plugin "bogus" not found'
  # Enums in dockerd's words, not serde's.
  create_says() { # body message [status]
    expect_eq "$(api dt -w ' %{http_code}' -H 'Content-Type: application/json' -d "$1" http://berth/containers/create)" \
      "{\"message\":\"$2\"} ${3:-400}"
  }
  create_says '{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"bogus"}}}' "invalid restart policy 'bogus'"
  create_says '{"Image":"busybox","HostConfig":{"CgroupnsMode":"bogus"}}' "invalid cgroup namespace mode: bogus"
  create_says '{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bogus","Target":"/x"}]}}' 'invalid mount config for type \"bogus\": mount type unknown'
  create_says '{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/x","BindOptions":{"Propagation":"bogus"}}]}}' 'invalid mount config for type \"bind\": invalid propagation mode: bogus'
  create_says '{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"","Target":"/x"}]}}' 'invalid mount config for type \"\": mount type unknown'
  create_says '{"Image":"busybox","HostConfig":{"Isolation":"process"}}' "Invalid isolation: \\\"process\\\" - linux only supports 'default'" 500
  # The other bodies: update's restart policy and types, exec's, network's
  # and volume's types, with dockerd 20.10's words and statuses.
  d dt create --name upd busybox >/dev/null
  body_says() { # path body message status
    expect_eq "$(api dt -w ' %{http_code}' -H 'Content-Type: application/json' -d "$2" "http://berth$1")" "{\"message\":\"$3\"} $4"
  }
  expect_eq "$(d dt update --restart bogus upd 2>&1)" "Error response from daemon: invalid restart policy 'bogus'"
  body_says /containers/upd/update '{"Memory":"x"}' "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64" 500
  body_says /containers/upd/update '{"RestartPolicy":{"Name":"always","MaximumRetryCount":"3"}}' \
    "json: cannot unmarshal string into Go struct field RestartPolicy.RestartPolicy.MaximumRetryCount of type int" 500
  body_says /containers/upd/exec '{"Cmd":"ls"}' "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string" 400
  body_says /networks/create '{"Name":5}' "json: cannot unmarshal number into Go struct field NetworkCreateRequest.Name of type string" 400
  body_says /volumes/create '{"Name":"v","Labels":[1]}' \
    "json: cannot unmarshal array into Go struct field VolumeCreateBody.Labels of type map[string]string" 400
  d dt rm upd >/dev/null
  # Checks dockerd makes at create and at start, in its words.
  create_says '{"Image":"busybox","HostConfig":{"Tmpfs":{"/x":""},"Binds":["/tmp:/x"]}}' 'Duplicate mount point: /x'
  create_says '{"Image":"busybox","HostConfig":{"StorageOpt":{"size":"1G"}}}' \
    "--storage-opt is supported only for overlay over xfs with 'pquota' mount option" 500
  create_says '{"Image":"busybox","HostConfig":{"CpusetMems":"9"}}' \
    "Requested memory nodes are not available - requested 9, available: $(cat /sys/devices/system/node/online 2>/dev/null || echo 0)"
  expect_eq "$(d dt run --rm --tmpfs /x:foo=bar busybox true 2>&1 | head -n 1)" \
    'docker: Error response from daemon: invalid tmpfs option ["foo" "bar"]'
  expect_eq "$(d dt run --rm --tmpfs /x:ro,foo busybox true 2>&1 | head -n 1)" \
    'docker: Error response from daemon: invalid tmpfs option ["foo"]'
  expect_eq "$(d dt run --rm --tmpfs /x:size=1m,mode=700,uid=5,noexec busybox stat -c %a:%u /x)" "700:5"
  expect_eq "$(d dt run --rm -u 99999999999 busybox true 2>&1 | head -n 1)" \
    "docker: Error response from daemon: uids and gids must be in range 0-2147483647"
  # A log driver whose service the host lacks fails the start, as dockerd's.
  if [ ! -S /dev/log ] && [ ! -S /var/run/syslog ] && [ ! -S /var/run/log ]; then
    expect_eq "$(d dt run --rm --log-driver syslog busybox true 2>&1 | head -n 1)" \
      "docker: Error response from daemon: failed to initialize logging driver: Unix syslog delivery error"
  fi
  if [ ! -S /run/systemd/journal/socket ]; then
    expect_eq "$(d dt run --rm --log-driver journald busybox true 2>&1 | head -n 1)" \
      "docker: Error response from daemon: failed to initialize logging driver: journald is not enabled on this host"
  fi
  # blkio throttles and cpuset mems reach the container's cgroups.
  local blk; blk=$(ls /sys/block | grep -v -e '^loop' -e '^ram' -e '^zram' | head -n 1)
  if [ -n "$blk" ]; then
    local mm; mm=$(cat "/sys/block/$blk/dev")
    expect_eq "$(d dt run --rm --device-write-iops "/dev/$blk:10" --device-read-iops "/dev/$blk:20" --device-write-bps "/dev/$blk:2mb" busybox \
      sh -c 'cd /sys/fs/cgroup/blkio; cat blkio.throttle.write_iops_device blkio.throttle.read_iops_device blkio.throttle.write_bps_device')" \
      "$(printf '%s 10\n%s 20\n%s 2097152' "$mm" "$mm" "$mm")"
  fi
  expect_eq "$(d dt run --rm --device-read-bps /dev/nope:1mb busybox true 2>&1 | head -n 1)" \
    "docker: Error response from daemon: stat /dev/nope: no such file or directory"
  expect_eq "$(d dt run --rm --cpuset-mems 0 busybox cat /sys/fs/cgroup/cpuset/cpuset.mems)" "0"
  # An exec's output is framed by its start request's Tty, not its create's
  # (docker-py creates with a tty and starts without).
  d dt run -d --name execs busybox sleep 300 >/dev/null
  exec_out() { # create-tty start-tty cmd
    local x
    x=$(api dt -H 'Content-Type: application/json' \
      -d "{\"Cmd\":[\"sh\",\"-c\",\"$3\"],\"Tty\":$1,\"AttachStdout\":true,\"AttachStderr\":true}" \
      http://berth/containers/execs/exec | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
    api dt -H 'Content-Type: application/json' -d "{\"Tty\":$2}" "http://berth/exec/$x/start" | od -An -c | tr -s ' ' | sed 's/^ //'
  }
  expect_eq "$(exec_out true false 'echo hi')" '001 \0 \0 \0 \0 \0 \0 004 h i \r \n'
  expect_eq "$(exec_out false true 'echo out; echo err >&2')" 'o u t \n'
  d dt rm -f execs >/dev/null
  # docker-py commits with pause=true, often as a short command exits.
  local c
  for _ in 1 2 3; do
    c=$(d dt create busybox touch /test)
    d dt start "$c" >/dev/null
    expect_eq "$(api dt -o /dev/null -w '%{http_code}' -X POST "http://berth/commit?container=$c&pause=1")" "201"
    d dt rm -f "$c" >/dev/null
  done
  # Swarm and plugin endpoints of a daemon in no swarm.
  local manager='This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.'
  expect_eq "$(api dt -w ' %{http_code}' http://berth/swarm)" "{\"message\":\"$manager\"} 503"
  expect_eq "$(api dt -w ' %{http_code}' http://berth/services)" "{\"message\":\"$manager\"} 503"
  expect_eq "$(api dt -w ' %{http_code}' http://berth/nodes/x)" "{\"message\":\"$manager\"} 503"
  expect_eq "$(api dt -w ' %{http_code}' -X POST http://berth/swarm/leave)" '{"message":"This node is not part of a swarm"} 503'
  expect_eq "$(api dt -w ' %{http_code}' http://berth/plugins)" "[] 200"
}

# --cgroup-parent (HostConfig.CgroupParent) and the daemon's cgroup-parent
# place the container's cgroups as runc does on cgroupfs (read off the
# reference dockerd 20.10): an absolute parent from each hierarchy's root, a
# relative one under the daemon's own cgroup, `..` never climbing out of it.
# The parents' names are this run's own; they are removed however it ends.
scenario_cgroup_parent_places_the_containers_cgroups() {
  local p="berth-cgp-$$-$RANDOM"
  trap "for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/memory/\$(grep :memory: /proc/$$/cgroup | cut -d: -f3)/; do
          for x in $p/sub $p $p-daemon $p-rel; do rmdir \"\$h\$x\" 2>/dev/null || true; done; done" EXIT
  mkdir -p "$WORK/cgp"
  echo "{\"cgroup-parent\": \"/$p-daemon\"}" > "$WORK/cgp/daemon.json"
  start_with_busybox cgp
  local id own line
  # The daemon's parent for every container without its own.
  line=$(d cgp run --rm busybox sh -c 'grep :memory: /proc/self/cgroup; hostname')
  expect_eq "$(head -1 <<<"$line" | cut -d: -f3 | cut -c1-$(( ${#p} + 21 )))" "/$p-daemon/$(tail -1 <<<"$line")"
  # An absolute parent of its own, in every hierarchy; top, stats and update
  # find the container there.
  id=$(d cgp run -d --cgroup-parent "/$p/sub" -m 64m busybox sleep 300)
  expect_eq "$(d cgp inspect -f '{{.HostConfig.CgroupParent}}' "$id")" "/$p/sub"
  expect_eq "$(d cgp exec "$id" grep -c ":/$p/sub/$id\$" /proc/self/cgroup)" "8"
  expect_eq "$(cat "/sys/fs/cgroup/memory/$p/sub/$id/memory.limit_in_bytes")" "67108864"
  expect_contains "$(d cgp top "$id")" "sleep 300"
  expect_eq "$(d cgp stats --no-stream --format '{{.PIDs}}' "$id")" "1"
  d cgp update -m 32m --memory-swap 64m "$id" >/dev/null
  expect_eq "$(cat "/sys/fs/cgroup/memory/$p/sub/$id/memory.limit_in_bytes")" "33554432"
  d cgp rm -f "$id" >/dev/null
  [ -e "/sys/fs/cgroup/memory/$p/sub/$id" ] && fail "the container's cgroup outlived it"
  # A relative parent is under the daemon's own cgroup, and `..` stays in it.
  own=$(grep :memory: "/proc/$(cat "$WORK/cgp/pid")/cgroup" | cut -d: -f3)
  own=${own%/}
  line=$(d cgp run --rm --cgroup-parent "../../$p-rel" busybox sh -c 'grep :memory: /proc/self/cgroup; hostname')
  expect_eq "$(head -1 <<<"$line" | cut -d: -f3 | cut -c1-$(( ${#own} + ${#p} + 18 )))" "$own/$p-rel/$(tail -1 <<<"$line")"
}

# What a container sharing another's network cannot have of its own, and
# where ports show (inspect's NetworkSettings.Ports, ps): only while the
# container runs on a bridge network that is not internal. Each answer was
# read off the reference dockerd 20.10.
scenario_network_mode_conflicts_and_where_ports_show() {
  start_with_busybox pm
  d pm run -d --name base busybox sleep 300 >/dev/null
  local f out
  for f in "--link base:x|container type network can't be used with links. This would result in undefined behavior" \
           "--dns 1.1.1.1|dns and the network mode" \
           "--add-host a:1.2.3.4|custom host-to-IP mapping and the network mode" \
           "-p 80|port publishing and the container type network mode" \
           "-P --expose 80|port publishing and the container type network mode" \
           "--expose 80|port exposing and the container type network mode"; do
    # shellcheck disable=SC2086
    if out=$(d pm create --network container:base ${f%%|*} busybox 2>&1); then fail "created with ${f%%|*}"; fi
    expect_contains "$out" "Error response from daemon: conflicting options: ${f#*|}"
  done
  d pm network create --internal inner >/dev/null
  d pm run -d --name internal --network inner -p 8080:80 busybox sleep 300 >/dev/null
  d pm run -d --name nonet --network none --expose 80 busybox sleep 300 >/dev/null
  d pm create --name created --expose 80 busybox >/dev/null
  d pm run -d --name web -p 127.0.0.1::80 --expose 90 busybox sleep 300 >/dev/null
  local port; port=$(d pm port web 80/tcp | cut -d: -f2)
  expect_eq "$(d pm ps -a --format '{{.Names}} [{{.Ports}}]' | sort)" \
"base []
created []
internal []
nonet []
web [90/tcp, 127.0.0.1:$port->80/tcp]"
  expect_eq "$(d pm inspect -f '{{json .NetworkSettings.Ports}}' internal nonet created web)" \
"{}
{}
{}
{\"80/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"$port\"}],\"90/tcp\":null}"
}
