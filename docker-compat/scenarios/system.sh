# System scenarios: version, info, ping, API version negotiation, identity, the
# daemon's guards (data root lock, listeners, TLS).

scenario_ping() {
  start_berthd ping
  expect_eq "$(api ping http://berth/_ping)" "OK"
  local headers; headers=$(api ping -D - -o /dev/null http://berth/v1.41/_ping | tr -d '\r')
  expect_contains "$headers" "Api-Version: 1.50"
  expect_contains "$headers" "Ostype: linux"
  expect_contains "$headers" "Builder-Version: 1"
}

scenario_docker_version_shows_berthd() {
  start_berthd ver
  local out; out=$(d ver version)
  expect_contains "$out" "Server: Berth Engine"
  expect_contains "$out" "API version:      1.50 (minimum version 1.24)"
  expect_eq "$(d ver version --format '{{.Server.KernelVersion}}')" "$(uname -r)"
  expect_eq "$(d ver version --format '{{.Server.APIVersion}} {{.Server.Os}}')" "1.50 linux"
}

scenario_docker_info_shows_berthd() {
  start_berthd inf
  local out; out=$(d inf info)
  expect_contains "$out" "Server Version: 0.1.0"
  expect_contains "$out" "Docker Root Dir: $WORK/inf/data"
  expect_contains "$out" "Storage Driver: overlay2"
  expect_contains "$out" "Cgroup Driver: cgroupfs"
  expect_contains "$out" "Kernel Version: $(uname -r)"
  expect_contains "$out" "CPUs: $(nproc)"
  expect_contains "$out" "Name: $(uname -n)"
  # Containers always outlive berthd: live restore is on, and says so.
  expect_contains "$out" "Live Restore Enabled: true"
  local id; id=$(d inf info --format '{{.ID}}')
  expect_eq "$(api inf http://berth/info | python3 -c 'import json,sys;print(json.load(sys.stdin)["ID"])')" "$id"
  # Keys the models lack and dockerd sends: at API 1.41 (dockerd 20.10's)
  # the bridge netfilter flags and KernelMemory too, each as the host has it.
  local keys='import json,sys; i=json.load(sys.stdin); print(" ".join(repr(i.get(k, "-")) for k in sys.argv[1:]))'
  local nf4=False nf6=False km=False kt="'-'"
  [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" = 1 ] && nf4=True
  [ "$(cat /proc/sys/net/bridge/bridge-nf-call-ip6tables 2>/dev/null)" = 1 ] && nf6=True
  [ -e /sys/fs/cgroup/memory/memory.kmem.limit_in_bytes ] && km=True
  [ -e /sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes ] && kt=True
  expect_eq "$(api inf http://berth/v1.41/info | python3 -c "$keys" BridgeNfIptables BridgeNfIp6tables KernelMemory KernelMemoryTCP GenericResources Isolation)" \
    "$nf4 $nf6 $km $kt None ''"
  expect_eq "$(api inf http://berth/info | python3 -c "$keys" BridgeNfIptables KernelMemory Isolation)" "'-' '-' ''"
}

scenario_engine_id_survives_restart_and_kill_9() {
  start_berthd ident
  local id; id=$(d ident info --format '{{.ID}}')
  [ -n "$id" ] || fail "no ID"
  stop_berthd ident TERM
  expect_eq "$STOP_CODE" "0" "exit code after SIGTERM"
  [ ! -e "$(sock ident)" ] || fail "socket left behind after a clean stop"
  start_berthd ident
  expect_eq "$(d ident info --format '{{.ID}}')" "$id"
  stop_berthd ident KILL
  expect_eq "$STOP_CODE" "137" "killed by SIGKILL"
  start_berthd ident
  expect_eq "$(d ident info --format '{{.ID}}')" "$id"
}

scenario_cli_negotiates_to_the_server_version() {
  start_berthd nego
  d nego version >/dev/null
  grep -q 'path=/v1.50/version' "$WORK/nego/berthd.log" || fail "the CLI did not use /v1.50/"
  expect_eq "$(DOCKER_API_VERSION=1.24 d nego version --format '{{.Client.APIVersion}} {{.Server.APIVersion}}')" "1.24 1.50"
  grep -q 'path=/v1.24/version' "$WORK/nego/berthd.log" || fail "no /v1.24/ request"
}

scenario_too_old_and_too_new_clients_are_refused() {
  start_berthd oldnew
  local out
  if out=$(DOCKER_API_VERSION=1.12 d oldnew version 2>&1); then fail "1.12 accepted"; fi
  expect_contains "$out" "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
  if out=$(DOCKER_API_VERSION=1.99 d oldnew info 2>&1); then fail "1.99 accepted"; fi
  expect_contains "$out" "client version 1.99 is too new. Maximum supported API version is 1.50"
  expect_eq "$(api oldnew -o /dev/null -w '%{http_code}' http://berth/v1.51/version)" "400"
}

scenario_unknown_route_is_page_not_found() {
  start_berthd notfound
  expect_eq "$(api notfound -w ' %{http_code}' http://berth/v1.50/no/such/route)" '{"message":"page not found"} 404'
}

scenario_second_daemon_on_a_data_root_exits_at_once() {
  start_berthd lock1
  local out code=0
  out=$(timeout 10 "$BERTHD" -H "unix://$WORK/lock1/other.sock" --data-root "$WORK/lock1/data" \
    --exec-root "$WORK/lock1/exec2" --config-file "$WORK/lock1/daemon.json" 2>&1) || code=$?
  expect_eq "$code" "1"
  expect_contains "$out" "is in use by berthd (pid $(cat "$WORK/lock1/pid"))"
  expect_eq "$(api lock1 http://berth/_ping)" "OK"
}

scenario_non_loopback_tcp_needs_tlsverify() {
  local out code=0 port; port=$(free_port)
  mkdir -p "$WORK/open"
  echo '{}' > "$WORK/open/none.json"
  out=$(timeout 10 "$BERTHD" -H "tcp://0.0.0.0:$port" --data-root "$WORK/open/data" \
    --exec-root "$WORK/open/exec" --config-file "$WORK/open/none.json" 2>&1) || code=$?
  expect_eq "$code" "1"
  expect_contains "$out" "refusing to listen on tcp://0.0.0.0:$port"
}

scenario_tlsverify_with_the_docker_cli() {
  local certs=$WORK/certs port; port=$(free_port)
  bash "$here/lib/gen-certs.sh" "$certs"
  start_berthd tls -H "tcp://127.0.0.1:$port" --tlsverify --tlscacert "$certs/ca.pem" \
    --tlscert "$certs/server-cert.pem" --tlskey "$certs/server-key.pem"
  local out
  out=$(docker -H "tcp://127.0.0.1:$port" --tlsverify --tlscacert "$certs/ca.pem" \
    --tlscert "$certs/client-cert.pem" --tlskey "$certs/client-key.pem" version --format '{{.Server.APIVersion}}')
  expect_eq "$out" "1.50"
  expect_contains "$(DOCKER_CERT_PATH=$certs/client-dir docker -H "tcp://127.0.0.1:$port" --tlsverify info)" "Server Version: 0.1.0"
  # No client certificate: refused.
  if out=$(docker -H "tcp://127.0.0.1:$port" --tls --tlscacert "$certs/ca.pem" version 2>&1); then
    fail "a client without a certificate was served"
  fi
  # A certificate from another CA: refused.
  if out=$(docker -H "tcp://127.0.0.1:$port" --tlsverify --tlscacert "$certs/ca.pem" \
      --tlscert "$certs/intruder-cert.pem" --tlskey "$certs/intruder-key.pem" version 2>&1); then
    fail "a client with a foreign certificate was served"
  fi
}

scenario_config_file_conflict_is_dockerds_error() {
  mkdir -p "$WORK/conf"
  echo '{"hosts": ["unix:///tmp/berth-x.sock"]}' > "$WORK/conf/daemon.json"
  local out code=0
  out=$(timeout 10 "$BERTHD" -H "unix://$WORK/conf/b.sock" --data-root "$WORK/conf/data" \
    --config-file "$WORK/conf/daemon.json" 2>&1) || code=$?
  expect_eq "$code" "1"
  expect_contains "$out" "the following directives are specified both as a flag and in the configuration file: hosts: (from flag: unix://$WORK/conf/b.sock, from file: [unix:///tmp/berth-x.sock])"
}
