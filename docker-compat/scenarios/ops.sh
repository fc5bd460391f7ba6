# shellcheck shell=bash disable=SC2154 # $root, $WORK, $REG, $BERTHD: set by docker-compat/run
# Running berthd: SIGHUP re-reads daemon.json (reload), `--validate`, and the
# Prometheus metrics of `--metrics-addr`.

# wait_for CMD...: retries CMD for up to 10 s.
ops_wait_for() {
  for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  "$@"
}

# ops_logged_at_least FILE TEXT N: FILE has at least N lines holding TEXT.
ops_logged_at_least() { [ "$(grep -c "$2" "$1")" -ge "$3" ]; }

# A port nothing listens on (bound, then let go).
ops_dead_port() { free_port; }

# mirrors_are NAME WANT: docker info lists exactly WANT as the mirrors.
mirrors_are() { [ "$(d "$1" info --format '{{json .RegistryConfig.Mirrors}}')" == "$2" ]; }

scenario_reload_sighup_applies_registry_mirrors_and_tells_daemon_reload() {
  local dir=$WORK/rl dead hub
  dead=$(ops_dead_port); hub=$(ops_dead_port)
  mkdir -p "$dir"
  # A mirror that does not answer, and no Docker Hub behind it (the hidden
  # flag points docker.io at a dead port): the pull cannot succeed.
  printf '{"registry-mirrors": ["http://127.0.0.1:%s"], "labels": ["tier=one"]}\n' "$dead" > "$dir/daemon.json"
  start_berthd rl --docker-hub-endpoint "127.0.0.1:$hub"
  if d rl pull busybox >"$dir/pull1.out" 2>&1; then fail "pulled through a dead mirror: $(cat "$dir/pull1.out")"; fi
  expect_eq "$(d rl info --format '{{json .Labels}}')" '["tier=one"]'
  local since id; since=$(date +%s); id=$(d rl info --format '{{.ID}}')
  # The new file: the suite's registry as the mirror, new labels, and keys
  # dockerd does not apply live (bip) are kept for the next start.
  printf '{"registry-mirrors": ["http://%s"], "labels": ["tier=two"], "max-concurrent-uploads": 7, "features": {"buildkit": false}, "bip": "10.123.0.1/24"}\n' "$REG" > "$dir/daemon.json"
  kill -HUP "$(cat "$dir/pid")"
  ops_wait_for mirrors_are rl "[\"http://$REG/\"]" || fail "mirrors after SIGHUP: $(d rl info --format '{{json .RegistryConfig.Mirrors}}')"
  expect_eq "$(d rl info --format '{{json .Labels}}')" '["tier=two"]'
  local out; out=$(d rl pull busybox) || fail "pull after the reload: $out"
  expect_contains "$out" "Status: Downloaded newer image for busybox:latest"
  sleep 1
  local ev; ev=$(d rl events --since "$since" --until "$(date +%s)" --filter type=daemon \
    --format '{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "registry-mirrors"}} {{index .Actor.Attributes "labels"}} {{index .Actor.Attributes "max-concurrent-uploads"}} {{index .Actor.Attributes "features"}} {{index .Actor.Attributes "name"}}')
  expect_eq "$ev" "daemon reload $id [\"http://$REG\"] [\"tier=two\"] 7 map[buildkit:false] $(hostname)"
  # dockerd's attribute names, all of them (20.10 on Linux).
  # shellcheck disable=SC2016 # a Go template, not shell
  local each_key='{{range $k, $v := .Actor.Attributes}}{{$k}} {{end}}'
  local keys; keys=$(d rl events --since "$since" --until "$(date +%s)" --filter type=daemon --format "$each_key")
  expect_eq "$keys" "allow-nondistributable-artifacts cluster-advertise cluster-store cluster-store-opts debug default-cgroupns-mode default-ipc-mode default-runtime default-shm-size features insecure-registries labels live-restore max-concurrent-downloads max-concurrent-uploads max-download-attempts name registry-mirrors runtimes shutdown-timeout "
  # Raw /events: Type daemon, no legacy status/id fields (as dockerd's).
  local raw; raw=$(api rl "http://berth/events?since=$since&until=$(date +%s)&filters=%7B%22type%22%3A%5B%22daemon%22%5D%7D")
  [[ $raw == '{"Type":"daemon","Action":"reload","Actor":{"ID":"'"$id"'"'* ]] || fail "raw event: $raw"
  grep -q 'bip.*takes effect when berthd restarts\|takes effect when berthd restarts.*bip' "$dir/berthd.log" ||
    fail "no word that bip waits for a restart: $(grep -i reload "$dir/berthd.log")"
  # The reload lasts: a second SIGHUP with the same file tells a second reload.
  kill -HUP "$(cat "$dir/pid")"
  sleep 1
  expect_eq "$(d rl events --since "$since" --until "$(date +%s)" --filter type=daemon --filter event=reload --format '{{.Action}}' | wc -l)" 2
}

scenario_reload_a_broken_daemon_json_keeps_the_running_config() {
  local dir=$WORK/rb hub
  hub=$(ops_dead_port)
  mkdir -p "$dir"
  printf '{"registry-mirrors": ["http://%s"]}\n' "$REG" > "$dir/daemon.json"
  start_berthd rb --docker-hub-endpoint "127.0.0.1:$hub"
  local since; since=$(date +%s)
  # Not JSON, a key berthd does not know, a key also given as a flag: each
  # refused in dockerd's words, the daemon goes on with what it had.
  local n=0 bad
  for bad in '{"registry-mirrors": ["http://127.0.0.1:1"' \
             '{"registry-mirrors": ["http://127.0.0.1:1"], "bogus": 1}' \
             '{"registry-mirrors": ["http://127.0.0.1:1"], "data-root": "/nowhere"}' \
             '{"registry-mirrors": ["http://127.0.0.1:1"], "labels": ["nolabel"]}'; do
    echo "$bad" > "$dir/daemon.json"
    kill -HUP "$(cat "$dir/pid")"
    n=$((n + 1))
    ops_wait_for ops_logged_at_least "$dir/berthd.log" 'configuration not reloaded' "$n" ||
      fail "no error logged for [$bad]: $(tail -5 "$dir/berthd.log")"
  done
  local log; log=$(grep 'configuration not reloaded' "$dir/berthd.log")
  expect_contains "$log" "unable to configure berthd with file $dir/daemon.json: EOF while parsing"
  expect_contains "$log" "unable to configure berthd with file $dir/daemon.json: the following directives don't match any configuration option: bogus"
  expect_contains "$log" "unable to configure berthd with file $dir/daemon.json: the following directives are specified both as a flag and in the configuration file: data-root: (from flag: $dir/data, from file: /nowhere)"
  expect_contains "$log" "file configuration validation failed: bad attribute format: nolabel"
  kill -0 "$(cat "$dir/pid")" || fail "berthd exited"
  # Still answering, with the old mirror in force: the pull goes through it.
  expect_eq "$(d rb info --format '{{json .RegistryConfig.Mirrors}}')" "[\"http://$REG/\"]"
  local out; out=$(d rb pull busybox) || fail "pull with the old config: $out"
  sleep 1
  expect_eq "$(d rb events --since "$since" --until "$(date +%s)" --filter type=daemon --format '{{.Action}}')" ""
}

scenario_validate_checks_a_config_file_and_exits() {
  local dir=$WORK/val out code
  mkdir -p "$dir"
  echo '{"registry-mirrors": ["http://127.0.0.1:5000"], "labels": ["a=b"], "metrics-addr": "127.0.0.1:9323", "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}}' > "$dir/good.json"
  code=0; out=$("$BERTHD" --validate --config-file "$dir/good.json" 2>&1) || code=$?
  expect_eq "$code" 0 "good file"
  expect_eq "$out" "configuration OK"
  # On stderr, as dockerd prints it.
  expect_eq "$("$BERTHD" --validate --config-file "$dir/good.json" 2>/dev/null)" ""
  : > "$dir/empty.json"
  expect_eq "$("$BERTHD" --validate --config-file "$dir/empty.json" 2>&1)" "configuration OK"
  echo '{"registry-mirrors": [' > "$dir/bad.json"
  code=0; out=$("$BERTHD" --validate --config-file "$dir/bad.json" 2>&1) || code=$?
  expect_eq "$code" 1 "malformed file"
  expect_contains "$out" "unable to configure berthd with file $dir/bad.json"
  echo '{"bogus": true}' > "$dir/unknown.json"
  code=0; out=$("$BERTHD" --validate --config-file "$dir/unknown.json" 2>&1) || code=$?
  expect_eq "$code" 1 "unknown key"
  expect_contains "$out" "the following directives don't match any configuration option: bogus"
  echo '{"default-runtime": "crun"}' > "$dir/runtime.json"
  code=0; out=$("$BERTHD" --validate --config-file "$dir/runtime.json" 2>&1) || code=$?
  expect_eq "$code" 1 "unknown default runtime"
  expect_contains "$out" "specified default runtime 'crun' does not exist"
  code=0; out=$("$BERTHD" --validate --config-file "$dir/nonexistent.json" 2>&1) || code=$?
  expect_eq "$code" 1 "missing file"
  # A flag and the file naming one key: dockerd's conflict, found by --validate too.
  code=0; out=$("$BERTHD" --validate --config-file "$dir/good.json" --label c=d 2>&1) || code=$?
  expect_eq "$code" 1 "flag and file"
  expect_contains "$out" "the following directives are specified both as a flag and in the configuration file: labels: (from flag: c=d, from file: [a=b])"
}

# metric NAME{LABELS} FILE: the value of one sample, read by Prometheus'
# own Python parser (which fails on a page it cannot parse).
ops_metric() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
want, path = sys.argv[1], sys.argv[2]
for fam in text_string_to_metric_families(open(path).read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        name = f"{s.name}{{{labels}}}" if labels else s.name
        if name == want:
            print(int(s.value) if s.value == int(s.value) else s.value)
            sys.exit(0)
print("missing")
EOF
}

# ops_metric_is PORT SAMPLE WANT: a fresh scrape has SAMPLE at WANT.
ops_metric_is() {
  curl -sf "http://127.0.0.1:$1/metrics" -o "$WORK/mt/scrape.txt" &&
    [ "$(ops_metric "$2" "$WORK/mt/scrape.txt")" == "$3" ]
}

# expect_metric PORT SAMPLE WANT: it gets there within 10 s.
expect_metric() {
  ops_wait_for ops_metric_is "$@" ||
    fail "$2: expected [$3], got [$(ops_metric "$2" "$WORK/mt/scrape.txt")]"
}

scenario_metrics_serve_prometheus_text_that_follows_the_containers() {
  local dir=$WORK/mt port
  port=$(free_port)
  mkdir -p "$dir"
  start_berthd mt --registry-mirror "http://$REG" --metrics-addr "127.0.0.1:$port"
  local page=$dir/metrics.txt
  curl -sf "http://127.0.0.1:$port/metrics" -o "$page" || fail "no /metrics"
  expect_contains "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$port/metrics")" "200 text/plain; version=0.0.4"
  expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other")" 404
  # The whole page parses, every family dockerd names is there.
  /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
names = {f.name for f in text_string_to_metric_families(open(sys.argv[1]).read())}
want = {"engine_daemon_container_states_containers", "engine_daemon_container_actions_seconds",
        "engine_daemon_events", "engine_daemon_events_subscribers_total", "engine_daemon_network_actions_seconds",
        "engine_daemon_engine_info", "engine_daemon_engine_cpus_cpus", "engine_daemon_engine_memory_bytes",
        "berth_eventlog_appends", "berth_eventlog_fsync_seconds", "berth_eventlog_replay_seconds", "berth_shims_alive",
        "process_resident_memory_bytes"}
missing = want - names
assert not missing, f"missing: {sorted(missing)}; have {sorted(names)}"
' "$page" || fail "the page: $(head -50 "$page")"
  expect_eq "$(ops_metric 'engine_daemon_container_states_containers{state="running"}' "$page")" 0
  expect_eq "$(ops_metric 'engine_daemon_engine_cpus_cpus' "$page")" "$(nproc)"
  local info; info=$(grep '^engine_daemon_engine_info{' "$page")
  expect_contains "$info" "daemon_id=\"$(d mt info --format '{{.ID}}')\""
  expect_contains "$info" 'graphdriver="overlay2"'
  expect_contains "$info" 'os_type="linux"'
  # A running container, a paused one, a stopped one.
  d mt run -d --name up busybox sleep 300 >/dev/null
  d mt run -d --name frozen busybox sleep 300 >/dev/null
  d mt pause frozen >/dev/null
  d mt run --name ended busybox true
  expect_metric "$port" 'engine_daemon_container_states_containers{state="running"}' 1
  expect_metric "$port" 'engine_daemon_container_states_containers{state="paused"}' 1
  expect_metric "$port" 'engine_daemon_container_states_containers{state="stopped"}' 1
  expect_metric "$port" 'berth_shims_alive' 2
  # Timed as dockerd times them: what succeeded (the first create, before
  # the pull, did not).
  expect_metric "$port" 'engine_daemon_container_actions_seconds_count{action="create"}' 3
  expect_metric "$port" 'engine_daemon_container_actions_seconds_count{action="start"}' 3
  curl -sf "http://127.0.0.1:$port/metrics" -o "$page"
  local events; events=$(ops_metric 'engine_daemon_events_total' "$page")
  [ "$events" -ge 9 ] || fail "engine_daemon_events_total $events after 3 runs"
  local appends; appends=$(ops_metric 'berth_eventlog_appends_total' "$page")
  [ "$appends" -ge 9 ] || fail "berth_eventlog_appends_total $appends"
  [ "$(ops_metric 'berth_eventlog_fsync_seconds_count' "$page")" -ge 1 ] || fail "no fsync timed"
  # Stop the running one, unpause the paused one, remove the ended one.
  d mt stop -t 1 up >/dev/null
  d mt unpause frozen >/dev/null
  d mt rm -f ended >/dev/null
  expect_metric "$port" 'engine_daemon_container_states_containers{state="running"}' 1
  expect_metric "$port" 'engine_daemon_container_states_containers{state="paused"}' 0
  expect_metric "$port" 'engine_daemon_container_states_containers{state="stopped"}' 1
  expect_metric "$port" 'engine_daemon_container_actions_seconds_count{action="delete"}' 1
  expect_metric "$port" 'engine_daemon_container_actions_seconds_count{action="stop"}' 1
  expect_metric "$port" 'berth_shims_alive' 1
  # A subscriber to /events counts while it listens.
  # (the CLI itself, not a subshell of `d`, so that its pid is the one killed)
  docker -H "unix://$(sock mt)" events >/dev/null 2>&1 &
  local evpid=$!
  expect_metric "$port" 'engine_daemon_events_subscribers_total' 1 || { kill "$evpid"; return 1; }
  kill "$evpid"; wait "$evpid" 2>/dev/null || true
  # berthd learns that a quiet stream's client left when it next writes to
  # it (dockerd's Go server reads the connection and learns at once): one
  # more event.
  d mt volume create nudge >/dev/null
  expect_metric "$port" 'engine_daemon_events_subscribers_total' 0
  d mt rm -f up frozen >/dev/null
}

scenario_metrics_addr_off_loopback_is_served_with_a_warning() {
  local port; port=$(free_port)
  mkdir -p "$WORK/mw"
  echo "{\"metrics-addr\": \"0.0.0.0:$port\"}" > "$WORK/mw/daemon.json"
  start_berthd mw
  # (read whole before grep: grep -q leaving early would fail curl's write)
  curl -sf "http://127.0.0.1:$port/metrics" -o "$WORK/mw/page.txt" || fail "not served on 0.0.0.0"
  grep -q '^engine_daemon_engine_info{' "$WORK/mw/page.txt" || fail "no engine_info: $(head "$WORK/mw/page.txt")"
  grep -q 'metrics-addr is not a loopback address' "$WORK/mw/berthd.log" || fail "no warning: $(grep -i metrics "$WORK/mw/berthd.log")"
  # A port already taken stops the start, as dockerd's "failed to start metrics server".
  local dir=$WORK/mx
  mkdir -p "$dir"; echo '{}' > "$dir/daemon.json"
  local code=0
  "$BERTHD" -H "unix://$dir/berth.sock" --data-root "$dir/data" --exec-root "$dir/exec" \
    --config-file "$dir/daemon.json" --metrics-addr "127.0.0.1:$port" >"$dir/berthd.log" 2>&1 || code=$?
  expect_eq "$code" 1
  expect_contains "$(cat "$dir/berthd.log")" "failed to start metrics server"
}
