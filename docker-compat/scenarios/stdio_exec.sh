# Stdin, ttys, attach and exec with the docker CLI: the shim's socket at work.

scenario_run_i_feeds_stdin_and_run_t_gives_a_tty() {
  start_with_busybox io
  expect_eq "$(echo hello | d io run -i --rm busybox cat)" "hello"
  # Stdin ends when the client's input ends (StdinOnce): wc sees all of it.
  expect_eq "$(seq 1000 | d io run -i --rm busybox wc -l | tr -d ' ')" "1000"
  # -t: a terminal of the container's own devpts; output is raw (CRLF).
  expect_eq "$(d io run --rm -t busybox tty | tr -d '\r')" "/dev/pts/0"
  expect_eq "$(d io run --rm busybox tty 2>&1; true)" "not a tty"
  # The tty's output is in the log too.
  d io run --name tlog -t busybox echo logged >/dev/null
  expect_eq "$(d io logs tlog | tr -d '\r')" "logged"
  d io rm tlog >/dev/null
}

scenario_exec_output_exit_codes_user_dir_env() {
  start_with_busybox ex
  d ex run -d --name box busybox sleep 300 >/dev/null
  expect_eq "$(d ex exec box echo hi)" "hi"
  local code=0
  d ex exec box sh -c 'exit 5' || code=$?
  expect_eq "$code" "5"
  expect_eq "$(d ex exec -u nobody box id -u)" "65534"
  expect_eq "$(d ex exec -w /tmp box pwd)" "/tmp"
  expect_eq "$(d ex exec -e A=1 -e B=two box sh -c 'echo $A $B')" "1 two"
  # An exec sees the container's processes: its init is pid 1.
  expect_eq "$(d ex exec box cat /proc/1/cmdline | tr '\0' ' ')" "sleep 300 "
  expect_eq "$(echo piped | d ex exec -i box cat)" "piped"
  expect_eq "$(d ex exec -t box tty | tr -d '\r')" "/dev/pts/0"
  # runc's identity and confinement: the primary group among the groups
  # (dockerd: "0" for root in this image, the named group alone for user:group), the
  # container's seccomp filter, no no_new_privs, its cgroup, a pty owned by
  # the user.
  local status; status=$(d ex exec box grep -E '^(Groups|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t ' ' ')
  expect_eq "$status" "$(printf 'Groups: 0 \nNoNewPrivs: 0\nSeccomp: 2')"
  expect_eq "$(d ex run --rm busybox grep Groups /proc/self/status | tr -s '\t ' ' ')" "Groups: 0 "
  expect_eq "$(d ex exec -u 1000:1000 box grep Groups /proc/self/status | tr -s '\t ' ' ')" "Groups: 1000 "
  expect_eq "$(d ex exec box sh -c 'cat /proc/self/cgroup' | grep -c "/berth")" \
    "$(d ex exec box sh -c 'cat /proc/1/cgroup' | grep -c "/berth")"
  expect_eq "$(d ex exec -t -u 1000 box sh -c 'stat -c %u $(tty)' | tr -d '\r')" "1000"
  local out; code=0
  out=$(d ex exec box nosuchbinary 2>&1) || code=$?
  expect_eq "$code" "126"
  expect_contains "$out" 'exec: "nosuchbinary": executable file not found in $PATH'
  # Detached: runs on after the CLI returns.
  d ex exec -d box sh -c 'echo detached > /tmp/d'
  sleep 0.3
  expect_eq "$(d ex exec box cat /tmp/d)" "detached"
  d ex stop -t 0 box >/dev/null
  if out=$(d ex exec box true 2>&1); then fail "exec in a stopped container ran"; fi
  expect_contains "$out" "is not running"
  d ex rm box >/dev/null
}

scenario_attach_to_a_running_container_and_start_a() {
  start_with_busybox at
  d at run -d --name late busybox sh -c 'sleep 1; echo late; exit 4' >/dev/null
  local code=0 out
  out=$(d at attach late) || code=$?
  expect_eq "$out" "late"
  expect_eq "$code" "4"
  # start -a attaches before the start: even the first line is there.
  d at create --name first busybox echo first >/dev/null
  expect_eq "$(d at start -a first)" "first"
  d at rm late first >/dev/null
}

scenario_pause_stops_a_counter_and_unpause_resumes_it() {
  start_with_busybox pz
  # The counter is renamed into place: a freeze never catches it half-written.
  local id; id=$(d pz run -d --name ctr busybox sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/m; mv /tmp/m /tmp/n; sleep 0.05; done')
  local n="$WORK/pz/data/overlay2/$id/merged/tmp/n"
  sleep 0.5
  d pz pause ctr >/dev/null
  expect_eq "$(d pz inspect -f '{{.State.Status}} {{.State.Paused}}' ctr)" "paused true"
  expect_contains "$(d pz ps --format '{{.Status}}')" "(Paused)"
  expect_eq "$(d pz ps -q --filter status=paused)" "${id:0:12}"
  local a b c out
  a=$(cat "$n"); sleep 0.5; b=$(cat "$n")
  expect_eq "$b" "$a" "the counter moved while paused"
  if out=$(d pz exec ctr true 2>&1); then fail "exec ran in a paused container"; fi
  expect_contains "$out" "is paused, unpause the container before exec"
  if out=$(d pz pause ctr 2>&1); then fail "a second pause was accepted"; fi
  expect_contains "$out" "is already paused"
  d pz unpause ctr >/dev/null
  sleep 0.5; c=$(cat "$n")
  [ "$c" -gt "$b" ] || fail "the counter did not move after unpause ($b -> $c)"
  if out=$(d pz unpause ctr 2>&1); then fail "unpause of a running container was accepted"; fi
  expect_contains "$out" "is not paused"
  # A paused container can be stopped: the signal is taken once it is thawed.
  d pz pause ctr >/dev/null
  d pz stop -t 1 ctr >/dev/null
  expect_eq "$(d pz inspect -f '{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}' ctr)" "exited false 137"
  d pz rm ctr >/dev/null
}

scenario_top_and_stats_of_a_running_container() {
  start_with_busybox ts
  d ts run -d --name tp -m 64m busybox sleep 300 >/dev/null
  local out
  out=$(d ts top tp)
  expect_contains "$out" "PID"
  expect_contains "$out" "sleep 300"
  # Only the container's processes: one row under the header.
  expect_eq "$(echo "$out" | wc -l)" "2"
  expect_contains "$(d ts top tp -o pid,comm)" "sleep"
  out=$(d ts stats --no-stream --format '{{.Name}} {{.PIDs}} {{.MemUsage}}' tp)
  expect_contains "$out" "tp 1 "
  expect_contains "$out" "/ 64MiB"
  # Streaming: a sample a second, each with the one before as precpu.
  out=$(api ts --max-time 2.6 http://berth/containers/tp/stats || true)
  [ "$(echo "$out" | grep -c '"read"')" -ge 2 ] || fail "fewer than 2 samples in 2.6 s: $out"
  expect_eq "$(echo "$out" | sed -n 2p | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["precpu_stats"]["system_cpu_usage"] > 0, v["pids_stats"]["current"])')" "True 1"
  d ts stop -t 0 tp >/dev/null
  if out=$(d ts top tp 2>&1); then fail "top of a stopped container answered"; fi
  expect_contains "$out" "is not running"
  d ts rm tp >/dev/null
}

scenario_privileged_has_the_daemons_capabilities_and_resize_reaches_the_tty() {
  start_with_busybox pv
  # berthd runs with this shell's bounding set: --privileged grants all of it
  # (not every capability there is: this machine lacks CAP_SYS_RESOURCE).
  local bnd; bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
  expect_eq "$(d pv run --rm --privileged busybox awk '/^CapEff/ {print $2}' /proc/self/status)" "$bnd"
  [ "$(d pv run --rm busybox awk '/^CapEff/ {print $2}' /proc/self/status)" != "$bnd" ] || fail "the default set is the whole bounding set"
  # A resize reaches the container's terminal.
  d pv run -d -t --name rsz busybox sh -c 'sleep 1; stty size' >/dev/null
  expect_eq "$(api pv -s -o /dev/null -w '%{http_code}' -XPOST 'http://berth/containers/rsz/resize?h=30&w=100')" "200"
  d pv wait rsz >/dev/null
  expect_eq "$(d pv logs rsz | tr -d '\r')" "30 100"
  expect_eq "$(api pv -s -o /dev/null -w '%{http_code}' -XPOST 'http://berth/containers/rsz/resize?h=x&w=1')" "400"
  d pv rm rsz >/dev/null
  # ConsoleSize at create: the tty has the client's size from the start.
  local cid
  cid=$(api pv -XPOST -H 'Content-Type: application/json' http://berth/containers/create?name=csz \
    -d '{"Image":"busybox","Tty":true,"Cmd":["stty","size"],"HostConfig":{"ConsoleSize":[40,120]}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
  d pv start csz >/dev/null
  d pv wait csz >/dev/null
  expect_eq "$(d pv logs csz | tr -d '\r')" "40 120"
  d pv rm csz >/dev/null
}

scenario_the_default_seccomp_profile_and_its_opt_outs() {
  start_with_busybox sc
  expect_eq "$(d sc run --rm busybox grep ^Seccomp: /proc/self/status | tr -d '\t ')" "Seccomp:2"
  # A user namespace needs no capability, but dockerd's profile refuses it.
  local out code=0
  out=$(d sc run --rm busybox unshare -U true 2>&1) || code=$?
  expect_eq "$code" "1"
  expect_contains "$out" "Operation not permitted"
  d sc run --rm --security-opt seccomp=unconfined busybox unshare -U true
  expect_eq "$(d sc run --rm --privileged busybox grep ^Seccomp: /proc/self/status | tr -d '\t ')" "Seccomp:0"
  # A profile of the user's own (the CLI sends the file's contents).
  local p=$WORK/sc/profile.json
  echo '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}' > "$p"
  code=0
  out=$(d sc run --rm --security-opt seccomp="$p" busybox mkdir /x 2>&1) || code=$?
  expect_eq "$code" "1"
  expect_contains "$out" "Operation not permitted"
  # Users and execs get it too.
  expect_eq "$(d sc run --rm -u nobody busybox grep ^Seccomp: /proc/self/status | tr -d '\t ')" "Seccomp:2"
  d sc run -d --name sx busybox sleep 300 >/dev/null
  expect_eq "$(d sc exec sx grep ^Seccomp: /proc/self/status | tr -d '\t ')" "Seccomp:2"
  # A container starts with no signal blocked and SIGPIPE/SIGQUIT at their
  # defaults (the shim's blocked SIGCHLD and Rust's ignored SIGPIPE leaked once).
  local sig ign
  sig=$(d sc run --rm busybox grep -E '^Sig(Blk|Ign):' /proc/self/status | tr -d '\t')
  expect_contains "$sig" "SigBlk:0000000000000000"
  ign=$((16#$(echo "$sig" | sed -n 's/^SigIgn://p')))
  [ $((ign & 0x1004)) -eq 0 ] || fail "SIGPIPE or SIGQUIT ignored in the container: $sig"
  d sc rm -f sx >/dev/null
}

# attach_and_type NAME CONTAINER TEXT KEYS [QUERY]: attaches with stdin
# (hijacked), types TEXT, then after its echo KEYS (python escapes), and
# prints what came back once the daemon ended the stream (or "TIMEOUT" after 5 s).
attach_and_type() {
  python3 - "$(sock "$1")" "$2" "$3" "$4" "${5:-}" <<'PY'
import socket, sys, time
sock, name, text, keys, query = sys.argv[1:]
esc = lambda t: t.encode().decode("unicode_escape").encode("latin-1")
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
s.sendall(("POST /containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1%s HTTP/1.1\r\n"
           "Host: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % (name, query)).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print(head.split(b"\r\n")[0].decode())
time.sleep(0.3)
s.sendall(esc(text))
time.sleep(0.5)
s.sendall(esc(keys))
s.settimeout(5)
out = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
except socket.timeout:
    out += b"TIMEOUT"
print(out.decode(errors="replace"))
PY
}

scenario_detach_keys_leave_the_container_running() {
  start_with_busybox dk
  d dk run -d -it --name tt busybox sh >/dev/null
  local out
  out=$(attach_and_type dk tt 'echo one\n' '\x10\x11')
  expect_contains "$out" "101"
  expect_contains "$out" "one"
  [[ $out != *TIMEOUT* ]] || fail "ctrl-p ctrl-q did not end the attach: $out"
  expect_eq "$(d dk inspect -f '{{.State.Running}}' tt)" "true"
  # Keys of the client's choosing; the default ones then are plain input.
  out=$(attach_and_type dk tt 'echo two\n' '\x01a' '&detachKeys=ctrl-a,a')
  [[ $out != *TIMEOUT* ]] || fail "ctrl-a a did not end the attach: $out"
  expect_eq "$(d dk inspect -f '{{.State.Running}}' tt)" "true"
  expect_eq "$(api dk -s -o /dev/null -w '%{http_code}' -XPOST 'http://berth/containers/tt/attach?stream=1&stdin=1&detachKeys=ctrl-1')" "400"
  d dk rm -f tt >/dev/null
}
