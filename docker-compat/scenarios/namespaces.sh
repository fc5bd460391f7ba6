# Namespaces, privileges, devices and per-interface stats as dockerd 20.10
# gives them (issue 17's table; each expectation read off the reference).

scenario_no_new_privs_and_capabilities_as_dockerd() {
  start_with_busybox nnp
  # runc loads the filter before it drops capabilities: no no_new_privs.
  expect_eq "$(d nnp run --rm busybox grep NoNewPrivs /proc/self/status)" "NoNewPrivs:	0"
  expect_eq "$(d nnp run --rm busybox sh -c 'grep NoNewPrivs /proc/1/status')" "NoNewPrivs:	0"
  expect_eq "$(d nnp run --rm --security-opt no-new-privileges busybox grep NoNewPrivs /proc/self/status)" "NoNewPrivs:	1"
  # ...and what the init lent itself for that is given back.
  expect_eq "$(d nnp run --rm busybox grep Cap /proc/self/status)" "CapInh:	0000000000000000
CapPrm:	00000000a80425fb
CapEff:	00000000a80425fb
CapBnd:	00000000a80425fb
CapAmb:	0000000000000000"
  expect_eq "$(d nnp run --rm --cap-drop setpcap busybox grep CapBnd /proc/self/status)" "CapBnd:	00000000a80424fb"
  expect_eq "$(d nnp run --rm --cap-add sys_admin busybox grep CapBnd /proc/self/status)" "CapBnd:	00000000a82425fb"
  # The filter is in place (a syscall dockerd's profile refuses).
  local out
  out=$(d nnp run --rm busybox unshare -U true 2>&1) && fail "unshare ran under the default profile"
  expect_contains "$out" "Operation not permitted"
  # An exec as well.
  d nnp run -d --name ex busybox sleep 300 >/dev/null
  expect_eq "$(d nnp exec ex grep NoNewPrivs /proc/self/status)" "NoNewPrivs:	0"
  d nnp rm -f ex >/dev/null
}

scenario_ipc_modes_as_dockerd() {
  start_with_busybox ipc
  local out donor sh
  donor=$(d ipc run -d --name donor busybox sleep 300)
  # A private donor (the default) is refused, at start, with exit 128.
  d ipc create --name j1 --ipc container:donor busybox true >/dev/null
  expect_eq "$(d ipc inspect -f '{{.HostConfig.IpcMode}}' j1)" "container:$donor"
  out=$(d ipc start j1 2>&1) && fail "joined a private IPC namespace"
  expect_contains "$out" "can't join IPC of container $donor: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
  expect_eq "$(d ipc inspect -f '{{.State.ExitCode}}' j1)" "128"
  out=$(d ipc create --ipc container:nosuch busybox true 2>&1) && fail "created with an unknown donor"
  expect_eq "$out" "Error response from daemon: No such container: nosuch"
  # A shareable one: its namespace and its /dev/shm.
  sh=$(d ipc run -d --name sh --ipc shareable busybox sh -c 'echo shared > /dev/shm/f; sleep 300')
  expect_eq "$(d ipc run --rm --ipc container:sh busybox sh -c 'readlink /proc/self/ns/ipc; cat /dev/shm/f')" \
    "$(d ipc exec sh readlink /proc/self/ns/ipc)
shared"
  expect_eq "$(d ipc exec sh grep -c ' /dev/shm ' /proc/self/mounts)" "1"
  # Its tmpfs is on the host while it runs, and goes when it stops.
  expect_eq "$(grep -c " $WORK/ipc/.*/$sh/shm " /proc/self/mounts)" "1"
  # A stopped donor.
  d ipc stop -t 0 sh >/dev/null
  expect_eq "$(grep -c " $WORK/ipc/.*/$sh/shm " /proc/self/mounts)" "0"
  out=$(d ipc run --rm --ipc container:sh busybox true 2>&1) && fail "joined a stopped container"
  expect_contains "$out" "can't join IPC of container $sh: container $sh is not running"
  # none: no /dev/shm; host: the host's namespace.
  expect_eq "$(d ipc run --rm --ipc none busybox sh -c 'ls /dev/shm 2>&1; grep -c /dev/shm /proc/self/mounts')" \
    "ls: /dev/shm: No such file or directory
0"
  expect_eq "$(d ipc run --rm --ipc host busybox readlink /proc/self/ns/ipc)" "$(readlink /proc/self/ns/ipc)"
  # An unknown mode passes create (as dockerd 20.10) and fails the start.
  d ipc create --name bogus --ipc bogus busybox true >/dev/null
  expect_eq "$(api ipc -w ' %{http_code}' -X POST http://berth/containers/bogus/start)" '{"message":"Invalid IPC mode: bogus"} 500'
  d ipc rm -f donor sh j1 bogus >/dev/null
}

scenario_privileged_sees_the_host_devices() {
  start_with_busybox priv
  local host inside missing
  host=$(find /dev -maxdepth 1 \( -type c -o -type b \) ! -name console -printf '%f\n' | sort)
  inside=$(d priv run --rm --privileged busybox ls /dev | sort)
  missing=$(comm -23 <(echo "$host") <(echo "$inside"))
  expect_eq "$missing" "" "host devices missing in a privileged container"
  # A default container has only the standard ones.
  expect_eq "$(d priv run --rm busybox ls /dev | tr '\n' ' ')" "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
}

scenario_stats_report_each_interface() {
  start_with_busybox nst
  d nst run -d --name on busybox sh -c 'ping -c 3 -i 0.2 "$(ip route | awk "/default/{print \$3}")" >/dev/null; sleep 300' >/dev/null
  d nst run -d --name off --network none busybox sleep 300 >/dev/null
  sleep 1
  api nst "http://berth/containers/on/stats?stream=0&one-shot=1" > "$WORK/nst.on"
  expect_eq "$(python3 -c 'import json,sys; n=json.load(open(sys.argv[1]))["networks"]; e=n["eth0"]; print(sorted(n), sorted(e), e["tx_packets"] >= 3, e["rx_bytes"] > 0)' "$WORK/nst.on")" \
    "['eth0'] ['rx_bytes', 'rx_dropped', 'rx_errors', 'rx_packets', 'tx_bytes', 'tx_dropped', 'tx_errors', 'tx_packets'] True True"
  api nst "http://berth/containers/off/stats?stream=0&one-shot=1" > "$WORK/nst.off"
  expect_eq "$(python3 -c 'import json,sys; print("networks" in json.load(open(sys.argv[1])))' "$WORK/nst.off")" "False"
  d nst rm -f on off >/dev/null
}

scenario_pid_and_network_donors_as_dockerd() {
  start_with_busybox pidj
  local out donor
  donor=$(d pidj run -d --name pd busybox sleep 300)
  # X's PID namespace: its processes are seen.
  expect_eq "$(d pidj run --rm --pid container:pd busybox ps -o comm | tr '\n' ' ')" "COMMAND sleep ps "
  d pidj create --name pj --pid container:pd busybox true >/dev/null
  expect_eq "$(d pidj inspect -f '{{.HostConfig.PidMode}}' pj)" "container:$donor"
  out=$(d pidj create --pid container:nosuch busybox true 2>&1) && fail "created with an unknown PID donor"
  expect_eq "$out" "Error response from daemon: No such container: nosuch"
  d pidj stop -t 0 pd >/dev/null
  expect_eq "$(api pidj -w ' %{http_code}' -X POST http://berth/containers/pj/start)" "{\"message\":\"container $donor is not running\"} 500"
  expect_eq "$(d pidj inspect -f '{{.State.Status}} {{.State.ExitCode}}' pj)" "created 128"
  # A network donor is named at create too, and looked for at start.
  d pidj create --name nj --network container:pd busybox true >/dev/null
  expect_eq "$(d pidj inspect -f '{{.HostConfig.NetworkMode}}' nj)" "container:$donor"
  expect_eq "$(api pidj -w ' %{http_code}' -X POST http://berth/containers/nj/start)" "{\"message\":\"cannot join network of a non running container: $donor\"} 409"
  d pidj create --name nj2 --network container:nosuch busybox true >/dev/null
  expect_eq "$(api pidj -w ' %{http_code}' -X POST http://berth/containers/nj2/start)" '{"message":"No such container: nosuch"} 404'
  d pidj rm -f pd pj nj nj2 >/dev/null
}
