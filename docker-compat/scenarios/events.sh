# `docker events`: read from the engine's log, so history reaches across a
# daemon's restart (dockerd keeps 256 events in memory and loses them), then
# live events, filtered and shaped as dockerd 20.10 shapes them.

scenario_events_since_reaches_back_across_a_restart() {
  start_with_busybox evr
  d evr run --rm --name before -l team=x busybox true
  stop_berthd evr KILL
  start_berthd evr --registry-mirror "http://$REG"
  # In order, once each, with the container's name, image and labels.
  local now; now=$(date +%s.%N)
  expect_eq "$(d evr events --since 1m --until "$now" --filter container=before --format '{{.Action}}' | tr '\n' ' ')" \
    "create attach start die destroy "
  expect_eq "$(d evr events --since 1m --until "$now" --filter event=die --format '{{.Actor.Attributes.name}} {{.Actor.Attributes.image}} {{.Actor.Attributes.team}} {{.Actor.Attributes.exitCode}} {{.From}}')" \
    "before busybox x 0 busybox"
  # dockerd's fields, the legacy ones included.
  local line; line=$(d evr events --since 1m --until "$now" --filter event=destroy --format '{{json .}}')
  for field in '"status":"destroy"' '"from":"busybox"' '"Type":"container"' '"Action":"destroy"' \
    '"scope":"local"' '"timeNano":' '"team":"x"'; do
    expect_contains "$line" "$field"
  done
  # The network side of the same run, and the image pulled before the restart.
  expect_eq "$(d evr events --since 1m --until "$now" --filter type=network --format '{{.Action}} {{.Actor.Attributes.name}}' | tr '\n' ' ')" \
    "connect bridge disconnect bridge "
  expect_eq "$(d evr events --since 1m --until "$now" --filter type=image --format '{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}')" \
    "pull busybox:latest busybox"
}

scenario_events_filters_and_until() {
  start_with_busybox evf
  local t0; t0=$(date +%s.%N)
  d evf run -d --name one -l tier=web busybox sleep 300 >/dev/null
  if d evf run --name two busybox sh -c 'exit 3'; then fail "exit 3 was a success"; fi
  d evf kill one >/dev/null
  d evf tag busybox mine:1
  d evf rmi mine:1 >/dev/null
  local now; now=$(date +%s.%N)
  ev() { d evf events --since "$t0" --until "$now" "$@"; }
  # Values of one key OR, keys AND.
  expect_eq "$(ev --filter event=start --filter event=die --format '{{.Action}} {{.Actor.Attributes.name}}' | tr '\n' ' ')" \
    "start one start two die two die one "
  expect_eq "$(ev --filter event=die --filter container=two --format '{{.Actor.Attributes.exitCode}}')" "3"
  expect_eq "$(ev --filter label=tier=web --filter event=kill --format '{{.Actor.Attributes.name}} {{.Actor.Attributes.signal}}')" "one 9"
  expect_eq "$(ev --filter type=image --format '{{.Action}} {{.Actor.Attributes.name}}' | tr '\n' ' ')" \
    "tag mine:1 untag $(d evf inspect -f '{{.Id}}' busybox) "
  expect_eq "$(ev --filter image=busybox --filter event=create --format '{{.Actor.Attributes.name}}' | tr '\n' ' ')" "one two "
  # dockerd's 400 for an unknown filter.
  local out
  if out=$(d evf events --filter bogus=1 --since "$t0" --until "$now" 2>&1); then fail "an unknown filter was accepted"; fi
  expect_contains "$out" "invalid filter 'bogus'"
  # An until in the future ends the stream when it comes, live events up to it.
  local until=$(( $(date +%s) + 3 ))
  d evf events --until "$until" --filter container=three --format '{{.Action}}' >"$WORK/evf/live" &
  local reader=$!
  sleep 1
  d evf run --rm --name three busybox true
  local ended=no
  for _ in $(seq 100); do kill -0 "$reader" 2>/dev/null || { ended=yes; break; }; sleep 0.1; done
  expect_eq "$ended" yes "the stream did not end at --until"
  wait "$reader" || fail "docker events failed"
  expect_eq "$(tr '\n' ' ' <"$WORK/evf/live")" "create attach start die destroy "
  d evf rm -f one two >/dev/null
}

scenario_events_live_after_history_has_no_gap_or_duplicate() {
  start_with_busybox evl
  local t0; t0=$(date +%s.%N)
  for i in 1 2 3; do d evl create --name "old$i" busybox true >/dev/null; done
  # History, then live: every create once, in order, while more are made.
  d evl events --since "$t0" --filter event=create --format '{{.Actor.Attributes.name}}' >"$WORK/evl/out" &
  local reader=$!
  for i in 1 2 3 4 5 6; do d evl create --name "new$i" busybox true >/dev/null; done
  for _ in $(seq 100); do [ "$(wc -l <"$WORK/evl/out")" -ge 9 ] && break; sleep 0.1; done
  kill "$reader"; wait "$reader" 2>/dev/null || true
  expect_eq "$(tr '\n' ' ' <"$WORK/evl/out")" "old1 old2 old3 new1 new2 new3 new4 new5 new6 "
  d evl rm old1 old2 old3 new1 new2 new3 new4 new5 new6 >/dev/null
}

scenario_events_for_actions_that_change_no_state() {
  start_with_busybox eva
  local t0; t0=$(date +%s.%N)
  d eva run -d -t --name act busybox sleep 300 >/dev/null
  d eva top act >/dev/null
  expect_eq "$(api eva -o /dev/null -w '%{http_code}' -X POST 'http://berth/containers/act/resize?h=30&w=100')" "200"
  d eva cp act:/etc/hostname "$WORK/eva/hostname"
  d eva cp "$WORK/eva/hostname" act:/tmp/
  d eva export -o "$WORK/eva/rootfs.tar" act
  d eva commit -m noted act mine:c >/dev/null
  d eva restart -t 1 act >/dev/null
  local now; now=$(date +%s.%N)
  ev() { d eva events --since "$t0" --until "$now" --filter container=act "$@"; }
  # As dockerd 20.10 names them (docker cp: archive-path out, extract-to-dir
  # in); the commit's pause and the stop's signals are left out here.
  expect_eq "$(ev --format '{{.Action}}' | grep -v -e pause -e kill | tr '\n' ' ')" \
    "create start top resize archive-path extract-to-dir export commit die stop start restart "
  expect_eq "$(ev --filter event=resize --format '{{.Actor.Attributes.height}} {{.Actor.Attributes.width}} {{.Actor.Attributes.name}}')" \
    "30 100 act"
  expect_eq "$(ev --filter event=commit --format '{{.Actor.Attributes.comment}} {{.Actor.Attributes.imageRef}} {{.Actor.Attributes.imageID}}')" \
    "noted mine:c $(d eva inspect -f '{{.Id}}' mine:c)"
  d eva rm -f act >/dev/null
}

scenario_events_retention_drops_old_history_and_keeps_the_state() {
  local out
  if out=$("$BERTHD" --events-retention age=10w --data-root "$WORK/evret-bad" 2>&1); then fail "a bad retention was accepted"; fi
  expect_contains "$out" 'invalid events-retention "age=10w"'
  # From daemon.json, as the flag.
  mkdir -p "$WORK/evret"
  echo '{"events-retention": "age=4s,size=64MB"}' > "$WORK/evret/daemon.json"
  start_with_busybox evret
  d evret run --name old -l keep=yes busybox true
  d evret run --rm --name brief busybox true
  # Checked every second (a quarter of the age): what is 4 s old goes (but
  # the newest event, which tells where the log goes on).
  sleep 6
  d evret run --rm --name young busybox true
  local now; now=$(date +%s.%N)
  evret_names() { d evret events --since 0 --until "$now" --filter type=container --format '{{.Actor.Attributes.name}}' | sort -u | tr '\n' ' '; }
  local before; before=$(evret_names)
  [[ $before == *young* && $before != *old* ]] || fail "history kept: [$before]"
  grep -q "events-retention: dropped the oldest events" "$WORK/evret/berthd.log" || fail "the log does not say what retention dropped"
  # The state those events made is whole, before and after a restart that
  # replays the shortened log.
  expect_eq "$(d evret ps -a --filter label=keep=yes --format '{{.Names}} {{.State}}')" "old exited"
  stop_berthd evret KILL
  start_berthd evret --registry-mirror "http://$REG"
  expect_eq "$(d evret inspect -f '{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.Config.Labels.keep}}' old)" "/old exited 0 yes"
  expect_eq "$(d evret images --format '{{.Repository}}')" "busybox"
  # (brief's last event may have aged out meanwhile.)
  local after; after=$(evret_names)
  [[ $after == *young* && $after != *old* ]] || fail "history after the restart: [$after]"
  d evret rm old >/dev/null
}
