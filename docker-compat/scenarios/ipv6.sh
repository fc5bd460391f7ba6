# IPv6 as on dockerd 20.10: --ipv6 networks (dual stack, addresses from the
# v6 subnet, the v6 default route, AAAA answers, hosts lines), --ip6,
# published ports on [::] and [::1] (carried by the daemon's proxy), the
# default bridge's ipv6/fixed-cidr-v6, and dockerd's words for bad input.
# Each scenario takes random unique-local subnets: scenarios and another
# engine run beside it.

# rand_v6_prefix: "fdXX:XXXX:XXXX::" (a /64's prefix, unique enough).
rand_v6_prefix() {
  printf 'fd%02x:%x:%x::' $((RANDOM % 256)) $((RANDOM + 1)) $((RANDOM + 1))
}

scenario_ipv6_network_dual_stack_as_dockerd() {
  start_with_busybox v6
  local p sub out port
  p=$(rand_v6_prefix); sub="${p}/64"
  d v6 network create --ipv6 --subnet "$sub" v6net >/dev/null
  expect_eq "$(d v6 network inspect -f '{{.EnableIPv6}}' v6net)" "true"
  # dockerd adds a v4 subnet from its pools, listed first with its gateway;
  # the v6 one as given.
  out=$(d v6 network inspect -f '{{range .IPAM.Config}}{{.Subnet}}|{{.Gateway}} {{end}}' v6net)
  [[ $out =~ ^[0-9.]+/[0-9]+\|[0-9.]+\ ${p}/64\|\ $ ]] || fail "IPAM config: $out"
  port=$(free_port)
  d v6 run -d --name web --network v6net -p "$port:80" busybox \
    sh -c 'mkdir /www && echo hello6 > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
  expect_eq "$(d v6 inspect -f '{{with .NetworkSettings.Networks.v6net}}{{.GlobalIPv6Address}} {{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}}{{end}}' web)" \
    "${p}2 64 ${p}1"
  expect_contains "$(d v6 network inspect -f '{{range .Containers}}{{.IPv6Address}}{{end}}' v6net)" "${p}2/64"
  # Published on 0.0.0.0 and [::], as dockerd lists them.
  expect_eq "$(d v6 port web)" "$(printf '80/tcp -> 0.0.0.0:%s\n80/tcp -> [::]:%s' "$port" "$port")"
  expect_eq "$(d v6 ps --format '{{.Ports}}' -f name=web)" "0.0.0.0:$port->80/tcp, [::]:$port->80/tcp"
  for _ in $(seq 50); do
    out=$(curl -s -m 3 "http://[::1]:$port/") && [ "$out" = hello6 ] && break
    sleep 0.1
  done
  expect_eq "$out" "hello6" "a published port on [::1]"
  expect_eq "$(curl -s -m 3 "http://127.0.0.1:$port/")" "hello6"
  # A second container reaches the first over v6, by address and by name.
  d v6 run -d --name cli --network v6net busybox sleep 300 >/dev/null
  expect_eq "$(d v6 exec cli wget -qO- "http://[${p}2]/")" "hello6"
  out=$(d v6 exec cli ping -c 1 -W 2 "${p}2") || fail "ping over v6: $out"
  out=$(d v6 exec cli nslookup -type=AAAA web 2>&1) || fail "AAAA web: $out"
  expect_contains "$out" "Address: ${p}2"
  out=$(d v6 exec cli ip -6 addr show eth0)
  expect_contains "$out" "inet6 ${p}3/64 scope global"
  expect_contains "$(d v6 exec cli ip -6 route)" "default via ${p}1 dev eth0"
  # /etc/hosts: its v4 line, then its v6 line, as dockerd writes them.
  local host4
  host4=$(d v6 inspect -f '{{.NetworkSettings.Networks.v6net.IPAddress}}' cli)
  expect_eq "$(d v6 exec cli tail -n 2 /etc/hosts)" \
    "$(printf '%s\t%s\n%s\t%s' "$host4" "$(d v6 inspect -f '{{.Config.Hostname}}' cli)" "${p}3" "$(d v6 inspect -f '{{.Config.Hostname}}' cli)")"
  # network connect of a running container: its new interface gets the v6
  # side too, and its hosts file a v6 line.
  d v6 run -d --name late busybox sleep 300 >/dev/null
  d v6 network connect v6net late
  local late6; late6=$(d v6 inspect -f '{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}' late)
  [[ $late6 == "${p}"* ]] || fail "no v6 address after connect: [$late6]"
  expect_contains "$(d v6 exec late ip -6 addr show eth1)" "inet6 $late6/64 scope global"
  expect_contains "$(d v6 exec late cat /etc/hosts)" "$late6	"
  out=$(d v6 exec cli ping -c 1 -W 2 "$late6") || fail "ping the connected container over v6: $out"
  d v6 rm -f late >/dev/null
  # A v6 gateway the user names: no container's address is taken for it.
  local r; r=$(rand_v6_prefix)
  d v6 network create --ipv6 --subnet "${r}/64" --gateway "${r}2" v6gw >/dev/null
  out=$(d v6 run --rm --network v6gw busybox ip -6 addr show eth0) || fail "a start on a network whose v6 gateway is ::2: $out"
  expect_contains "$out" "inet6 ${r}"
  [[ $out != *"inet6 ${r}2/"* ]] || fail "a container took the v6 gateway's address: $out"
  # --ip6: a static v6 address on the network.
  expect_contains "$(d v6 run --rm --network v6net --ip6 "${p}99" busybox ip -6 addr show eth0)" "inet6 ${p}99/64"
  if out=$(d v6 run --rm --network v6net --ip6 "fd00:dead::5" busybox true 2>&1); then fail "an --ip6 outside the subnet ran"; fi
  expect_contains "$out" "Invalid address fd00:dead::5: It does not belong to any of this network's subnets"
  if out=$(d v6 run --rm --ip6 "${p}98" busybox true 2>&1); then fail "--ip6 on the default bridge ran"; fi
  expect_contains "$out" "user specified IP address is supported on user defined networks only"
  # Two v6 networks are kept apart as two v4 ones are (ip6tables rules in
  # our own chains), though the host forwards v6.
  local q; q=$(rand_v6_prefix)
  d v6 network create --ipv6 --subnet "${q}/64" v6other >/dev/null
  d v6 run -d --name far --network v6other busybox sleep 300 >/dev/null
  out=$(d v6 exec far ping -c 1 -W 2 "${q}1") || fail "ping its own gateway: $out"
  local br_other; br_other=br-$(d v6 network inspect -f '{{.Id}}' v6other | cut -c1-12)
  ip6tables -S "BERTH-$(net_tag v6)-ISOLATION-2" | grep -qx -- "-A BERTH-$(net_tag v6)-ISOLATION-2 -o $br_other -j DROP" ||
    fail "no v6 isolation rule for $br_other"
  # Only a host that forwards v6 could carry it at all.
  if [ "$(cat /proc/sys/net/ipv6/conf/all/forwarding)" = 1 ]; then
    if d v6 exec cli ping -c 2 -W 1 "${q}2" >/dev/null 2>&1; then fail "a v6 network reached another"; fi
  fi
  d v6 rm -f far >/dev/null
  # Nothing is published from an internal network (as dockerd): no [::] port.
  local iport; iport=$(free_port)
  d v6 network create --internal --ipv6 --subnet "$(rand_v6_prefix)/64" v6int >/dev/null
  d v6 run -d --name inner --network v6int -p "$iport:80" busybox httpd -f -p 80 >/dev/null
  expect_eq "$(d v6 port inner)" ""
  if curl -s -m 2 "http://[::1]:$iport/" >/dev/null; then fail "an internal network's port answered"; fi
  d v6 rm -f inner >/dev/null
  # dockerd's words for what it refuses.
  expect_eq "$(api v6 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"q1","EnableIPv6":true}')" \
    '{"message":"could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network"} 404'
  expect_eq "$(api v6 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create \
    -d "{\"Name\":\"q2\",\"EnableIPv6\":true,\"IPAM\":{\"Config\":[{\"Subnet\":\"${p}/80\"}]}}")" \
    '{"message":"Pool overlaps with other one on this address space"} 403'
  # A v6 subnet without --ipv6 is kept and shown, and gives no addresses.
  d v6 network create --subnet "$(rand_v6_prefix)/64" v6off >/dev/null
  expect_eq "$(d v6 network inspect -f '{{.EnableIPv6}} {{len .IPAM.Config}}' v6off)" "false 2"
  expect_eq "$(d v6 run --rm --network v6off busybox sh -c 'ip -6 addr show eth0 | grep -c global')" "0"
  d v6 rm -f web cli >/dev/null
}

scenario_ipv6_published_ports_on_loopback_and_through_a_restart() {
  start_with_busybox v6p
  local port port2 out
  port=$(free_port); port2=$(free_port)
  # On the default bridge (no IPv6): [::] still answers, as dockerd 20.10's
  # proxy carries it to the container's v4 address; and one on [::1] only
  # (not on [::] nor 127.0.0.1).
  d v6p run -d --name web -p "$port:80" -p "[::1]:$port2:80" busybox \
    sh -c 'mkdir -p /www && echo hi6 > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
  expect_eq "$(d v6p port web)" \
    "$(printf '80/tcp -> 0.0.0.0:%s\n80/tcp -> [::1]:%s\n80/tcp -> [::]:%s' "$port" "$port2" "$port")"
  expect_eq "$(d v6p inspect -f '{{range (index .NetworkSettings.Ports "80/tcp")}}{{.HostIp}}:{{.HostPort}} {{end}}' web | tr ' ' '\n' | LC_ALL=C sort | xargs)" \
    "0.0.0.0:$port ::1:$port2 :::$port"
  for _ in $(seq 50); do
    out=$(curl -s -m 3 "http://[::1]:$port/") && [ "$out" = hi6 ] && break
    sleep 0.1
  done
  expect_eq "$out" "hi6"
  expect_eq "$(curl -s -m 3 "http://[::1]:$port2/")" "hi6"
  if curl -s -m 2 "http://127.0.0.1:$port2/" >/dev/null; then fail "a [::1] port answered on 127.0.0.1"; fi
  # A port taken on [::] is refused in dockerd's words.
  if out=$(d v6p run --rm -p "[::1]:$port2:80" busybox true 2>&1); then fail "a taken port was published"; fi
  expect_contains "$out" "Bind for ::1:$port2 failed: port is already allocated"
  # The daemon is killed and comes back: the container ran on, and its v6
  # port answers again (the new daemon's proxy).
  stop_berthd v6p KILL
  START_WAIT=30 start_berthd v6p --registry-mirror "http://$REG"
  for _ in $(seq 50); do
    out=$(curl -s -m 3 "http://[::1]:$port2/") && [ "$out" = hi6 ] && break
    sleep 0.1
  done
  expect_eq "$out" "hi6" "[::1] after the daemon's restart"
  expect_eq "$(curl -s -m 3 "http://[::1]:$port/")" "hi6" "[::] after the daemon's restart"
  # A stopped container lets its v6 ports go; its start takes them again.
  d v6p stop -t 1 web >/dev/null
  if curl -s -m 2 "http://[::1]:$port2/" >/dev/null; then fail "the port answered after stop"; fi
  d v6p start web >/dev/null
  for _ in $(seq 50); do
    out=$(curl -s -m 3 "http://[::1]:$port2/") && [ "$out" = hi6 ] && break
    sleep 0.1
  done
  expect_eq "$out" "hi6" "[::1] after stop and start"
  d v6p rm -f web >/dev/null
  # Its ports are let go with it.
  if curl -s -m 2 "http://[::1]:$port2/" >/dev/null; then fail "the port answered after rm"; fi
}

scenario_ipv6_default_bridge_from_daemon_json() {
  local p; p=$(rand_v6_prefix)
  mkdir -p "$WORK/v6b"
  printf '{"ipv6": true, "fixed-cidr-v6": "%s/64"}\n' "$p" > "$WORK/v6b/daemon.json"
  start_with_busybox v6b
  expect_eq "$(d v6b network inspect -f '{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}' bridge)" \
    "true $(d v6b network inspect -f '{{(index .IPAM.Config 0).Subnet}}' bridge) ${p}/64 "
  d v6b run -d --name aa busybox sleep 300 >/dev/null
  # As dockerd for a fixed-cidr-v6 of /80 or wider: the prefix and the MAC.
  local mac m a6
  mac=$(d v6b inspect -f '{{.NetworkSettings.MacAddress}}' aa); m=${mac//:/}
  a6=${p}$(printf '%x:%x:%x' "0x${m:0:4}" "0x${m:4:4}" "0x${m:8:4}")
  expect_eq "$(d v6b inspect -f '{{.NetworkSettings.GlobalIPv6Address}} {{.NetworkSettings.GlobalIPv6PrefixLen}} {{.NetworkSettings.IPv6Gateway}}' aa)" \
    "$a6 64 ${p}1"
  expect_contains "$(d v6b exec aa ip -6 addr show eth0)" "inet6 $a6/64 scope global"
  out=$(d v6b run --rm busybox ping -c 1 -W 2 "$a6") || fail "ping over the default bridge's v6: $out"
  # Without it in daemon.json after a restart, the default bridge is v4 only.
  d v6b rm -f aa >/dev/null
  stop_berthd v6b
  echo '{}' > "$WORK/v6b/daemon.json"
  start_berthd v6b --registry-mirror "http://$REG"
  expect_eq "$(d v6b network inspect -f '{{.EnableIPv6}} {{len .IPAM.Config}}' bridge)" "false 1"
}
