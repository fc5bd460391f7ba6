# Health checks: HEALTHCHECK and --health-*, probed by each container's shim;
# State.Health, `docker ps` words and its health filter, health_status events,
# and probes that go on while berthd is down.

# Waits up to 30 s for container $2 of daemon $1 to have health $3.
wait_health() {
  local got
  for _ in $(seq 300); do
    got=$(d "$1" inspect -f '{{.State.Health.Status}}' "$2" 2>/dev/null)
    [ "$got" == "$3" ] && return 0
    sleep 0.1
  done
  fail "container $2: health [$got], expected [$3]"
}

scenario_health_checks_report_in_inspect_ps_and_events() {
  start_with_busybox hc
  local t0; t0=$(date +%s.%N)
  # The start period forgives failures until the first success: it stays
  # starting, whatever the load, until the test makes the probe pass.
  d hc run -d --name web --health-cmd 'test -f /ok && echo fine' --health-interval 200ms \
    --health-retries 2 --health-start-period 60s busybox sleep 300 >/dev/null
  expect_eq "$(d hc inspect -f '{{.State.Health.Status}}' web)" "starting"
  expect_contains "$(d hc ps --filter name=web --format '{{.Status}}')" "(health: starting)"
  expect_eq "$(d hc ps --filter health=starting --format '{{.Names}}')" "web"
  d hc exec web touch /ok
  wait_health hc web healthy
  expect_contains "$(d hc ps --filter name=web --format '{{.Status}}')" "(healthy)"
  expect_eq "$(d hc ps --filter health=healthy --format '{{.Names}}')" "web"
  expect_eq "$(d hc ps --filter health=unhealthy --format '{{.Names}}')" ""
  # The log: at most 5 results, the last a success with its output.
  local log; log=$(d hc inspect -f '{{json .State.Health}}' web)
  python3 - "$log" <<'EOF' || fail "State.Health: $log"
import json, sys
h = json.loads(sys.argv[1])
assert h["Status"] == "healthy" and h["FailingStreak"] == 0, h
assert 1 <= len(h["Log"]) <= 5, h
last = h["Log"][-1]
assert last["ExitCode"] == 0 and last["Output"] == "fine\n", last
assert last["Start"] <= last["End"], last
EOF
  # Once healthy, failures count: two in a row make it unhealthy.
  d hc exec web rm /ok
  wait_health hc web unhealthy
  expect_contains "$(d hc ps --filter name=web --format '{{.Status}}')" "(unhealthy)"
  expect_eq "$(d hc ps --filter health=unhealthy --format '{{.Names}}')" "web"
  # health_status events, once per change (never "starting"), and the
  # event filter takes health_status without its colon, as dockerd.
  local now; now=$(date +%s.%N)
  expect_eq "$(d hc events --since "$t0" --until "$now" --filter event=health_status --format '{{.Action}} {{.Actor.Attributes.name}}' | tr '\n' ',')" \
    "health_status: healthy web,health_status: unhealthy web,"
  # A container without a check: none, and no State.Health.
  d hc run -d --name plain busybox sleep 300 >/dev/null
  expect_eq "$(d hc ps --filter health=none --format '{{.Names}}')" "plain"
  expect_eq "$(d hc inspect -f '{{json .State.Health}}' plain)" "null"
  # As dockerd, a check has no state before the first start.
  d hc create --name fresh --health-cmd true busybox sleep 300 >/dev/null
  expect_eq "$(d hc inspect -f '{{json .State.Health}}' fresh)" "null"
  expect_eq "$(d hc ps -a --filter health=none --filter name=fresh --format '{{.Names}}')" "fresh"
  d hc rm fresh >/dev/null
  # --no-healthcheck turns an image's check off.
  d hc run -d --name off --no-healthcheck busybox sleep 300 >/dev/null
  expect_eq "$(d hc inspect -f '{{json .Config.Healthcheck.Test}}' off)" '["NONE"]'
  expect_eq "$(d hc inspect -f '{{json .State.Health}}' off)" "null"
  # Bad values, in dockerd's words.
  local out
  if out=$(d hc ps --filter health=sick 2>&1); then fail "health=sick was taken"; fi
  expect_contains "$out" "Unrecognised filter value for health: sick"
  if out=$(api hc -X POST -H 'Content-Type: application/json' \
      -d '{"Image":"busybox","Healthcheck":{"Test":["CMD","true"],"Interval":1000}}' \
      -w ' %{http_code}' "http://berth/containers/create"); then :; fi
  expect_contains "$out" "Interval in Healthcheck cannot be less than 1ms"
  expect_contains "$out" " 400"
  # A stopped container keeps its last health; a new start begins again at
  # starting with the old results kept.
  d hc stop -t 0 web >/dev/null
  expect_eq "$(d hc inspect -f '{{.State.Health.Status}}' web)" "unhealthy"
  local before; before=$(d hc inspect -f '{{len .State.Health.Log}}' web)
  d hc start web >/dev/null
  expect_eq "$(d hc inspect -f '{{.State.Health.Status}} {{.State.Health.FailingStreak}}' web)" "starting 0"
  expect_eq "$(d hc inspect -f '{{len .State.Health.Log}}' web)" "$before"
  d hc rm -f web plain off >/dev/null
}

scenario_health_probes_go_on_while_berthd_is_down() {
  start_with_busybox hd
  d hd run -d --name web --health-cmd 'test -f /ok' --health-interval 200ms \
    --health-retries 1 --health-start-period 60s busybox sleep 300 >/dev/null
  wait_health hd web starting
  local id pid; id=$(d hd inspect -f '{{.Id}}' web); pid=$(d hd inspect -f '{{.State.Pid}}' web)
  local t0; t0=$(date +%s.%N)
  stop_berthd hd KILL
  # No daemon: the test makes the probe pass (from the host, in the
  # container's mount namespace) and the shim alone finds it healthy.
  nsenter -t "$pid" -m touch /ok
  local state=$WORK/hd/data/containers/$id/health.json got=""
  for _ in $(seq 300); do
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Status"])' "$state" 2>/dev/null)
    [ "$got" == "healthy" ] && break
    sleep 0.1
  done
  expect_eq "$got" "healthy" "the shim's health with no daemon"
  # The daemon that comes back learns it, and tells it as an event.
  start_berthd hd --registry-mirror "http://$REG"
  wait_health hd web healthy
  expect_eq "$(d hd inspect -f '{{.State.Pid}}' web)" "$pid"
  local now; now=$(date +%s.%N)
  expect_eq "$(d hd events --since "$t0" --until "$now" --filter event=health_status --format '{{.Action}}')" \
    "health_status: healthy"
  # And it watches again: the next change reaches it live.
  d hd exec web rm /ok
  wait_health hd web unhealthy
  d hd rm -f web >/dev/null
}
