# `docker run` flags as dockerd 20.10 answers them: differences a side-by-side
# sweep of the CLI's run/create flags found (issue 17), each expectation read
# off the reference dockerd.

scenario_run_flags_as_dockerd() {
  start_with_busybox rf
  local out
  # --entrypoint "": no entrypoint, and not the image's Cmd either.
  expect_eq "$(d rf run --rm --entrypoint "" busybox echo hi)" "hi"
  out=$(d rf create --entrypoint "" busybox 2>&1) && fail "created without a command"
  expect_eq "$out" "Error response from daemon: No command specified"
  # Capabilities: names checked at create; ALL takes all but the dropped.
  out=$(d rf create --cap-drop FOO busybox 2>&1) && fail "an unknown capability was accepted"
  expect_eq "$out" 'Error response from daemon: invalid CapDrop: unknown capability: "CAP_FOO"'
  out=$(d rf create --cap-add foo busybox 2>&1) && fail "an unknown capability was accepted"
  expect_eq "$out" 'Error response from daemon: invalid CapAdd: unknown capability: "CAP_FOO"'
  # (ALL holds CAP_SYS_ADMIN, bit 21, which the defaults lack; the drop
  # takes it out again.)
  local all
  all=$(d rf run --rm --cap-add ALL busybox grep CapBnd /proc/self/status)
  expect_eq "$(( 0x${all##*	} & (1 << 21) ))" "$(( 1 << 21 ))" "ALL gives CAP_SYS_ADMIN"
  expect_eq "$(d rf run --rm --cap-add ALL --cap-drop SYS_ADMIN busybox grep CapBnd /proc/self/status)" \
    "CapBnd:	$(printf '%016x' $(( 0x${all##*	} & ~(1 << 21) )))"
  # -e NAME of an unset variable: none; the rest in the spec's order.
  expect_eq "$(d rf run --rm -e NOPE_NOT_SET -e Y=1 -e X=2 busybox sh -c 'env | cut -d= -f1 | tr "\n" " "')" \
    "HOSTNAME SHLVL HOME X PATH Y PWD "
  # cgroup namespace: host by default on v1, its own with private.
  d rf create --name cg busybox >/dev/null
  expect_eq "$(d rf inspect -f '{{.HostConfig.CgroupnsMode}}' cg)" "host"
  d rf rm cg >/dev/null
  expect_eq "$(d rf run --rm --cgroupns private busybox head -1 /proc/self/cgroup)" "9:name=systemd:/"
  expect_eq "$(d rf run --rm -h myhost --domainname example.com busybox cat /proc/sys/kernel/domainname)" "example.com"
  # A missing device in Go's words (the CLI exits 127 on them).
  out=$(d rf run --rm --device /dev/nonexist busybox true 2>&1) && fail "a missing device was accepted"
  expect_eq "$?" "127"
  expect_contains "$out" 'adding custom device "/dev/nonexist": no such file or directory'
  out=$(d rf run --rm --cpus 1 --cpu-quota 50000 busybox true 2>&1) && fail "--cpus with --cpu-quota"
  expect_contains "$out" "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
  # On the host's network: the host's name.
  expect_eq "$(d rf run --rm --network host busybox sh -c 'hostname; cat /etc/hostname; echo $HOSTNAME')" "$(hostname)
$(hostname)
$(hostname)"
  # The sysctls dockerd sets in a container's own network namespace.
  expect_eq "$(d rf run --rm -u 1000 busybox cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range)" "0
0	2147483647"
  # The init layer's files.
  expect_eq "$(d rf run --rm busybox sh -c 'stat -c %A /.dockerenv; readlink /etc/mtab')" "-rwxr-xr-x
/proc/mounts"
  # ...which diff leaves out, with an image that has no /etc/hosts (the
  # fixture busybox) and one that has.
  d rf create --name src busybox true >/dev/null
  d rf export src > "$WORK/rf.tar"
  mkdir -p "$WORK/rfx/etc" && touch "$WORK/rfx/etc/hosts"
  tar -rf "$WORK/rf.tar" -C "$WORK/rfx" etc/hosts
  d rf import "$WORK/rf.tar" withhosts >/dev/null
  d rf rm src >/dev/null
  d rf run --name diffed busybox true >/dev/null
  d rf run --name diffed2 withhosts /bin/true >/dev/null
  expect_eq "$(d rf diff diffed; d rf diff diffed2)" ""
  d rf rm diffed diffed2 >/dev/null
  # Resource flags reach the process and its cgroup.
  expect_eq "$(d rf run --rm --oom-score-adj 500 busybox cat /proc/self/oom_score_adj)" "500"
  out=$(d rf create --oom-score-adj 1001 busybox 2>&1) && fail "oom-score-adj 1001"
  expect_eq "$out" "Error response from daemon: Invalid value 1001, range for oom score adj is [-1000, 1000]"
  expect_eq "$(d rf run --rm --memory-swappiness 10 busybox cat /sys/fs/cgroup/memory/memory.swappiness)" "10"
  expect_eq "$(d rf run --rm -m 64m --oom-kill-disable busybox grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control)" "oom_kill_disable 1"
  expect_eq "$(d rf run --rm --ulimit core=-1 busybox sh -c 'ulimit -c')" "unlimited"
  # Log modes.
  expect_eq "$(d rf run --rm --log-opt mode=non-blocking --log-opt max-buffer-size=1m busybox echo ok)" "ok"
  out=$(d rf create --log-opt mode=bogus busybox 2>&1) && fail "a bogus log mode"
  expect_eq "$out" "Error response from daemon: logger: logging mode not supported: bogus"
  out=$(d rf create --log-opt max-buffer-size=1m busybox 2>&1) && fail "max-buffer-size without non-blocking"
  expect_eq "$out" "Error response from daemon: logger: max-buffer-size option is only supported with 'mode=non-blocking'"
  # --read-only: the /etc files too.
  expect_eq "$(d rf run --rm --read-only busybox sh -c 'echo x >> /etc/hosts' 2>&1)" "sh: can't create /etc/hosts: Read-only file system"
  # --network none: lo is up.
  expect_eq "$(d rf run --rm --network none busybox sh -c 'ping -c1 -W2 127.0.0.1 >/dev/null && echo up')" "up"
  # Create-time checks, in dockerd's words.
  says() { # expected-words create-args...
    local want=$1 got; shift
    got=$(d rf create "$@" busybox true 2>&1) && fail "created with $*"
    expect_eq "$got" "Error response from daemon: $want"
  }
  says "Minimum memory limit can not be less than memory reservation limit, see usage" -m 64m --memory-reservation 128m
  says 'invalid --security-opt 2: "bogus=1"' --security-opt bogus=1
  says 'invalid --security-opt 2: "no-new-privileges=bogus"' --security-opt no-new-privileges=bogus
  says "Invalid signal: BOGUS" --stop-signal BOGUS
  says "conflicting options: hostname and the UTS mode" --uts host --hostname foo
  says "the working directory 'relative' is invalid, it needs to be an absolute path" -w relative
  says "invalid mount path: 't' mount path must be absolute" --tmpfs t
  says "maximum retry count cannot be used with restart policy 'always'" --restart always:3
  d rf create --name clean -w /x/ --pids-limit -5 busybox true >/dev/null
  expect_eq "$(d rf inspect -f '{{.Config.WorkingDir}}' clean)" "/x"
  # inspect has dockerd's keys, null or zero when unset.
  expect_eq "$(d rf inspect -f '{{json .Config.User}} {{json .Config.Entrypoint}} {{json .Config.Volumes}} {{json .HostConfig.CapAdd}} {{json .HostConfig.MemorySwappiness}} {{json .ExecIDs}}' clean)" \
    '"" null null null null null'
  api rf http://berth/v1.41/containers/clean/json > "$WORK/rf.inspect"
  expect_eq "$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["Config"]["User"] == "", c["Config"]["WorkingDir"], "Binds" in c["HostConfig"])' "$WORK/rf.inspect")" "True /x True"
  d rf rm clean >/dev/null
  # Before API 1.44 images carry VirtualSize (= Size).
  expect_eq "$(api rf http://berth/v1.41/images/busybox/json | python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["VirtualSize"] == i["Size"])')" "True"
  expect_eq "$(api rf http://berth/v1.43/images/json | python3 -c 'import json,sys; print(all(i["VirtualSize"] == i["Size"] for i in json.load(sys.stdin)))')" "True"
  expect_eq "$(api rf http://berth/v1.44/images/busybox/json | python3 -c 'import json,sys; print("VirtualSize" in json.load(sys.stdin))')" "False"
  # host-gateway is the default bridge's gateway; a dotted name gets its
  # short name too.
  local gw
  gw=$(d rf network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
  expect_eq "$(d rf run --rm --add-host gw:host-gateway -h my.host.example busybox sh -c 'tail -2 /etc/hosts | cut -f2')" "gw
my.host.example my"
  expect_eq "$(d rf run --rm --add-host gw:host-gateway busybox sh -c 'grep -w gw /etc/hosts | cut -f1')" "$gw"
  # ps's name filter is a regexp, with or without the leading "/".
  d rf create --name flt-abc busybox true >/dev/null
  expect_eq "$(d rf ps -a --filter 'name=^flt-a.c$' --format '{{.Names}}') $(d rf ps -a --filter 'name=^/flt' --format '{{.Names}}')" "flt-abc flt-abc"
  expect_eq "$(d rf ps -a --filter 'name=^abc' --format '{{.Names}}')" ""
  d rf rm flt-abc >/dev/null
  # A missing --volumes-from container is a 400 (no pull first).
  out=$(d rf create --volumes-from nosuch busybox 2>&1) && fail "--volumes-from nosuch"
  expect_eq "$out" "Error response from daemon: No such container: nosuch"
}

scenario_create_body_type_errors_in_gos_words() {
  start_with_busybox tj
  local body want
  while IFS='|' read -r body want; do
    expect_eq "$(api tj -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/containers/create -d "$body")" \
      "{\"message\":\"$want\"} 500" "$body"
  done <<'CASES'
{"Image":"busybox","HostConfig":{"Memory":"x"}}|json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64
{"Image":5}|json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string
{"Image":"busybox","Env":[1]}|json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string
{"Image":"busybox","Tty":1}|json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Tty of type bool
{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":80}]}}}|json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string
{"Image":"busybox"|unexpected EOF
CASES
  expect_eq "$(d tj ps -aq | wc -l)" "0"
}
