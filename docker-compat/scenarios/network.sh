# Networking scenarios: the default bridge, user networks, names, published
# ports, connect/disconnect, and what is left on the host afterwards. Only
# addresses of this machine are used: the containers' own, the bridges' and
# loopback. No name is ever sent to the host's resolver.

# net_tag NAME: the instance tag berthd derives from the data root.
net_tag() { printf '%s' "$WORK/$1/data" | sha256sum | cut -c1-6; }

# free_subnet: a 10.213.X.0/24 no route on the host overlaps.
free_subnet() {
  local x
  for _ in $(seq 50); do
    x=$((RANDOM % 230 + 10))
    ip -4 route | grep -q "^10\.213\.$x\." || { echo "10.213.$x.0/24"; return; }
  done
  return 1
}

# our_rules NAME: the iptables rules in that berthd's chains.
our_rules() { iptables-save | grep -c -- "BERTH-$(net_tag "$1")" || true; }

scenario_net_default_bridge_addresses_and_reach() {
  start_with_busybox nb
  local subnet gw tag
  subnet=$(d nb network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}}')
  gw=$(d nb network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}')
  tag=$(net_tag nb)
  # The default bridge is ours, named after this instance, with the gateway.
  ip -4 addr show "berth-$tag" | grep -q "inet $gw/" || fail "bridge berth-$tag has no $gw"
  d nb run -d --name aa busybox sleep 300 >/dev/null
  local ip; ip=$(d nb inspect --format '{{.NetworkSettings.IPAddress}}' aa)
  expect_eq "$(d nb inspect --format '{{.NetworkSettings.Networks.bridge.IPAddress}}' aa)" "$ip"
  python3 -c "import ipaddress,sys; sys.exit(0 if ipaddress.ip_address('$ip') in ipaddress.ip_network('$subnet') else 1)" \
    || fail "$ip is not in $subnet"
  expect_eq "$(d nb inspect --format '{{.NetworkSettings.Gateway}} {{.NetworkSettings.MacAddress}}' aa)" \
    "$gw $(python3 -c "print('02:42:'+':'.join('%02x'%int(b) for b in '$ip'.split('.')))")"
  # Container to container by address, and the host to the container.
  d nb run --rm busybox ping -c 1 -W 2 "$ip" | grep -q "1 packets received" || fail "no reply from $ip"
  busybox ping -c 1 -W 2 "$ip" >/dev/null || fail "the host cannot reach $ip"
  # /etc/hosts ends with the container's own address and name; resolv.conf
  # has no loopback nameserver.
  local short; short=$(d nb inspect --format '{{.Config.Hostname}}' aa)
  expect_eq "$(d nb exec aa tail -n 1 /etc/hosts)" "$(printf '%s\t%s' "$ip" "$short")"
  if d nb exec aa grep -q 'nameserver 127\.' /etc/resolv.conf; then fail "a loopback nameserver in resolv.conf"; fi
  expect_eq "$(d nb exec aa cat /etc/hostname)" "$short"
  # --network none: only lo. --add-host lands in /etc/hosts.
  expect_eq "$(d nb run --rm --network none busybox sh -c "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")" "lo"
  expect_contains "$(d nb run --rm --add-host db.test:10.1.2.3 busybox cat /etc/hosts)" "$(printf '10.1.2.3\tdb.test')"
  expect_eq "$(d nb run --rm --dns 10.9.9.9 --dns-search corp.test busybox cat /etc/resolv.conf)" \
    "$(printf 'search corp.test\nnameserver 10.9.9.9')"
  # --network container:aa shares aa's namespace (its address).
  expect_contains "$(d nb run --rm --network container:aa busybox ip -4 -o addr show eth0)" "inet $ip/"
  # --network host: the host's interfaces.
  expect_contains "$(d nb run --rm --network host busybox cat /proc/net/dev)" "berth-$tag"
}

scenario_net_user_network_create_ls_inspect_rm() {
  start_with_busybox nu
  local subnet id out
  subnet=$(free_subnet)
  id=$(d nu network create --subnet "$subnet" --label team=web --opt com.docker.network.bridge.name=bt-$$ front)
  expect_eq "${#id}" "64"
  expect_contains "$(d nu network ls --format '{{.Name}} {{.Driver}} {{.Scope}}')" "front bridge local"
  expect_eq "$(d nu network ls -q --filter label=team=web)" "${id:0:12}"
  # As dockerd: a subnet the user gave is shown as given (no gateway unless
  # one was given too); the bridge still takes the first address.
  expect_eq "$(d nu network inspect --format '{{json .IPAM.Config}} {{.Labels.team}}' front)" \
    "[{\"Subnet\":\"$subnet\"}] web"
  ip -4 addr show "bt-$$" | grep -q "inet ${subnet%.0/24}.1/24" || fail "bridge bt-$$ not set up"
  # A static address on a network with a subnet of the user's.
  local want="${subnet%.0/24}.77"
  expect_eq "$(d nu run --rm --network front --ip "$want" busybox sh -c "ip -4 -o addr show eth0 | awk '{print \$4}'")" "$want/24"
  if out=$(d nu run --rm --ip 172.30.9.9 busybox true 2>&1); then fail "--ip on the default bridge was accepted"; fi
  expect_contains "$out" "user specified IP address is supported"
  # An automatic subnet, from the pools, overlapping nothing on the host.
  d nu network create back >/dev/null
  local auto; auto=$(d nu network inspect --format '{{(index .IPAM.Config 0).Subnet}}' back)
  [ -n "$auto" ] || fail "no subnet given to back"
  # Bad input.
  if out=$(d nu network create front 2>&1); then fail "a taken name was accepted"; fi
  expect_contains "$out" "network with name front already exists"
  if out=$(d nu network create --subnet "$subnet" other 2>&1); then fail "an overlapping subnet was accepted"; fi
  expect_contains "$out" "Pool overlaps with other one on this address space"
  # The CLI checks the gateway itself; the API says why too, with a 400.
  if out=$(d nu network create --subnet "$(free_subnet)" --gateway 10.99.99.1 gw 2>&1); then fail "a gateway outside was accepted"; fi
  expect_contains "$out" "10.99.99.1"
  out=$(api nu -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
    -d "{\"Name\":\"gw\",\"IPAM\":{\"Config\":[{\"Subnet\":\"$(free_subnet)\",\"Gateway\":\"10.99.99.1\"}]}}" http://x/networks/create)
  expect_contains "$out" "failed to allocate gateway (10.99.99.1): Requested address is out of range"
  expect_contains "$out" " 400"
  if out=$(d nu run --rm --network nosuch busybox true 2>&1); then fail "an unknown network was accepted"; fi
  # As dockerd: the create goes through and the start fails (a 404 at
  # create would make the CLI pull the image first).
  expect_eq "$out" "docker: Error response from daemon: network nosuch not found

Run 'docker run --help' for more information"
  d nu create --name nonet --network nosuch busybox true >/dev/null
  expect_eq "$(api nu -w ' %{http_code}' -X POST http://x/containers/nonet/start)" '{"message":"network nosuch not found"} 404'
  expect_eq "$(d nu inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}' nonet)" "created 128 network nosuch not found"
  d nu rm nonet >/dev/null
  if out=$(d nu network rm bridge 2>&1); then fail "bridge was removed"; fi
  expect_contains "$out" "pre-defined network"
  d nu network rm front back >/dev/null
  expect_eq "$(d nu network ls --format '{{.Name}}' | sort | tr '\n' ' ')" "bridge host none "
  if ip link show "bt-$$" >/dev/null 2>&1; then fail "bridge bt-$$ left behind"; fi
}

scenario_net_names_and_aliases_resolve_on_user_networks() {
  start_with_busybox nn
  d nn network create app >/dev/null
  local id; id=$(d nn run -d --name web --network app --network-alias www busybox sleep 300)
  local ip; ip=$(d nn inspect --format '{{.NetworkSettings.Networks.app.IPAddress}}' web)
  expect_contains "$(d nn inspect --format '{{.NetworkSettings.Networks.app.Aliases}}' web)" "www"
  for name in web www "${id:0:12}"; do
    out=$(d nn run --rm --network app busybox nslookup "$name" 2>&1) || fail "nslookup $name: $out"
    expect_contains "$out" "Address: $ip"
  done
  d nn run --rm --network app busybox ping -c 1 -W 2 www | grep -q "1 packets received" || fail "ping www"
  # The default bridge resolves no names (its resolver is pointed at nothing
  # that answers, so no query leaves the host).
  if d nn run --rm --dns 127.0.0.1 busybox nslookup web >/dev/null 2>&1; then fail "web resolved on the default bridge"; fi
  # An unknown single name is not sent off the host: the network's server says no.
  if out=$(d nn run --rm --network app busybox nslookup nosuchname 2>&1); then fail "nosuchname resolved"; fi
  expect_contains "$out" "NXDOMAIN"
}

scenario_net_published_ports_answer_on_the_host() {
  start_with_busybox np
  local port out rules
  port=$(free_port)
  d np run -d --name web -p "127.0.0.1:$port:80" busybox sh -c 'mkdir /www && echo hello-berth > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
  for _ in $(seq 50); do out=$(curl -s --max-time 2 "http://127.0.0.1:$port/") && [ -n "$out" ] && break; sleep 0.1; done
  expect_eq "$out" "hello-berth"
  expect_eq "$(d np port web)" "80/tcp -> 127.0.0.1:$port"
  expect_contains "$(d np ps --format '{{.Ports}}')" "127.0.0.1:$port->80/tcp"
  # -P publishes the exposed ports on ports the host picks.
  d np run -d --name any --expose 8080 -P busybox sh -c 'mkdir /w && echo any > /w/index.html && exec httpd -f -p 8080 -h /w' >/dev/null
  # On 0.0.0.0 and [::] (dockerd 20.10's two bindings), one port.
  local mapped; mapped=$(d np port any 8080/tcp | head -n 1)
  local hp=${mapped##*:}
  expect_eq "${mapped%:*}" "0.0.0.0"
  expect_eq "$(d np port any 8080/tcp | tail -n 1)" "[::]:$hp"
  for _ in $(seq 50); do out=$(curl -s --max-time 2 "http://127.0.0.1:$hp/") && [ -n "$out" ] && break; sleep 0.1; done
  expect_eq "$out" "any"
  # udp, on a port the host picks.
  d np run -d --name dns -p 127.0.0.1::53/udp busybox sleep 300 >/dev/null
  mapped=$(d np port dns 53/udp)
  expect_eq "${mapped%:*}" "127.0.0.1"
  iptables-save -t nat | grep "BERTH-$(net_tag np)-DNAT" | grep -q -- "-p udp -m udp --dport ${mapped##*:} " || fail "no udp DNAT rule"
  # A host port in use: a clear error, nothing started, nothing left behind.
  rules=$(our_rules np)
  local netns_before; netns_before=$(ls "$WORK/np/exec/netns" | wc -l)
  if out=$(d np run -d --name clash -p "127.0.0.1:$port:80" busybox sleep 300 2>&1); then fail "a port in use was published twice"; fi
  expect_contains "$out" "port is already allocated"
  expect_eq "$(d np inspect --format '{{.State.Running}}' clash)" "false"
  expect_eq "$(our_rules np)" "$rules"
  expect_eq "$(ls "$WORK/np/exec/netns" | wc -l)" "$netns_before"
  # Stopping the container takes its rules away.
  d np rm -f web any clash dns >/dev/null
  # (written in the background, right after the exit)
  for _ in $(seq 40); do iptables-save -t nat | grep -q -- "--dport $port " || break; sleep 0.05; done
  if iptables-save -t nat | grep -q -- "--dport $port "; then fail "the DNAT rule for $port stayed"; fi
  expect_eq "$(ls "$WORK/np/exec/netns" | wc -l)" "0"
}

scenario_net_connect_and_disconnect_a_running_container() {
  start_with_busybox nc
  d nc network create side >/dev/null
  d nc run -d --name peer --network side busybox sleep 300 >/dev/null
  d nc run -d --name box busybox sleep 300 >/dev/null
  expect_eq "$(d nc exec box sh -c "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '")" "eth0 lo "
  d nc network connect --alias boxy side box
  expect_eq "$(d nc exec box sh -c "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '")" "eth0 eth1 lo "
  expect_eq "$(d nc inspect --format '{{len .NetworkSettings.Networks}}' box)" "2"
  local sip; sip=$(d nc inspect --format '{{.NetworkSettings.Networks.side.IPAddress}}' box)
  d nc exec box ping -c 1 -W 2 "$(d nc inspect --format '{{.NetworkSettings.Networks.side.IPAddress}}' peer)" | grep -q "1 packets received" || fail "box cannot reach peer"
  d nc exec peer nslookup boxy | grep -q "Address: $sip" || fail "boxy does not resolve on side"
  if out=$(d nc network connect side box 2>&1); then fail "connected twice"; fi
  expect_contains "$out" "already exists in network side"
  d nc network disconnect side box
  expect_eq "$(d nc exec box sh -c "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '")" "eth0 lo "
  expect_eq "$(d nc inspect --format '{{len .NetworkSettings.Networks}}' box)" "1"
  if out=$(d nc network disconnect side box 2>&1); then fail "disconnected twice"; fi
  expect_contains "$out" "is not connected to network side"
}

scenario_net_removal_in_use_refused_then_nothing_left() {
  start_with_busybox nr
  local tag; tag=$(net_tag nr)
  local id; id=$(d nr network create --internal closed)
  d nr run -d --name c1 --network closed busybox sleep 300 >/dev/null
  local out
  if out=$(d nr network rm closed 2>&1); then fail "a network in use was removed"; fi
  expect_contains "$out" "has active endpoints"
  # An internal network has no way out: no masquerade for it.
  local subnet; subnet=$(d nr network inspect --format '{{(index .IPAM.Config 0).Subnet}}' closed)
  if iptables-save -t nat | grep "BERTH-$tag" | grep -q -- "-s $subnet"; then fail "an internal network is masqueraded"; fi
  local veths; veths=$(ip -o link show master "br-${id:0:12}" | wc -l)
  expect_eq "$veths" "1"
  d nr rm -f c1 >/dev/null
  d nr network rm closed >/dev/null
  if ip link show "br-${id:0:12}" >/dev/null 2>&1; then fail "bridge left behind"; fi
  if iptables-save | grep "BERTH-$tag" | grep -q "br-${id:0:12}"; then fail "rules for the bridge left behind"; fi
  expect_eq "$(ls "$WORK/nr/exec/netns" | wc -l)" "0"
}

scenario_net_restarts_duplicate_nothing() {
  start_with_busybox nk
  local tag; tag=$(net_tag nk)
  d nk network create keep >/dev/null
  local port; port=$(free_port)
  d nk run -d --name web --network keep -p "127.0.0.1:$port:80" busybox sh -c 'mkdir /www && echo up > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
  local rules addrs
  for _ in $(seq 50); do curl -s --max-time 2 "http://127.0.0.1:$port/" | grep -q up && break; sleep 0.1; done
  rules=$(our_rules nk)
  addrs=$(ip -4 -o addr show "berth-$tag" | wc -l)
  # A crash, then a clean stop: every start rebuilds the same rules, once.
  stop_berthd nk KILL
  start_berthd nk --registry-mirror "http://$REG"
  stop_berthd nk TERM
  start_berthd nk --registry-mirror "http://$REG"
  expect_eq "$(our_rules nk)" "$rules"
  expect_eq "$(ip -4 -o addr show "berth-$tag" | wc -l)" "$addrs"
  expect_eq "$(iptables -S FORWARD | grep -c "BERTH-$tag")" "1"
  expect_eq "$(curl -s --max-time 2 "http://127.0.0.1:$port/")" "up"
  expect_eq "$(d nk port web)" "80/tcp -> 127.0.0.1:$port"
}

scenario_net_networks_are_isolated_from_each_other() {
  start_with_busybox ni
  d ni network create left >/dev/null
  d ni network create right >/dev/null
  d ni run -d --name ll --network left busybox sleep 300 >/dev/null
  d ni run -d --name rr --network right busybox sleep 300 >/dev/null
  d ni run -d --name dd busybox sleep 300 >/dev/null
  local rip dip
  rip=$(d ni inspect --format '{{.NetworkSettings.Networks.right.IPAddress}}' rr)
  dip=$(d ni inspect --format '{{.NetworkSettings.Networks.bridge.IPAddress}}' dd)
  if d ni exec ll ping -c 1 -W 1 "$rip" >/dev/null 2>&1; then fail "left reached right"; fi
  if d ni exec ll ping -c 1 -W 1 "$dip" >/dev/null 2>&1; then fail "left reached the default bridge"; fi
  # On both networks, it reaches both.
  d ni network connect right ll
  d ni exec ll ping -c 1 -W 2 "$rip" | grep -q "1 packets received" || fail "ll cannot reach rr once on right"
  # An internal network reaches nothing beyond its bridge.
  d ni network create --internal inner >/dev/null
  d ni run -d --name in1 --network inner busybox sleep 300 >/dev/null
  if d ni exec in1 ping -c 1 -W 1 "$dip" >/dev/null 2>&1; then fail "an internal network reached another bridge"; fi
  expect_eq "$(d ni exec in1 ip route | grep -c default)" "0"
}

scenario_net_bip_and_address_pools_from_the_config() {
  local bip_net pool
  bip_net=$(free_subnet)
  mkdir -p "$WORK/np2"
  # A pool of its own for user networks, from daemon.json.
  pool="10.214.$((RANDOM % 200 + 20)).0/24"
  echo "{\"default-address-pools\":[{\"base\":\"$pool\",\"size\":26}]}" > "$WORK/np2/daemon.json"
  start_berthd np2 --bip "${bip_net%.0/24}.1/24"
  expect_eq "$(d np2 network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}')" \
    "$bip_net ${bip_net%.0/24}.1"
  d np2 network create p1 >/dev/null
  d np2 network create p2 >/dev/null
  local s1 s2
  s1=$(d np2 network inspect p1 --format '{{(index .IPAM.Config 0).Subnet}}')
  s2=$(d np2 network inspect p2 --format '{{(index .IPAM.Config 0).Subnet}}')
  expect_eq "$s1" "${pool%.0/24}.0/26"
  expect_eq "$s2" "${pool%.0/24}.64/26"
}

# remove_our_chains NAME: what someone else's firewall reload does to that
# berthd's chains: the jumps to them deleted, then each flushed and deleted.
# (A daemon that notices may put them back meanwhile: each step may fail.)
remove_our_chains() {
  local p; p="BERTH-$(net_tag "$1")"
  iptables -w -D FORWARD -j "$p-FORWARD" 2>/dev/null || true
  iptables -w -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j "$p-DNAT" 2>/dev/null || true
  iptables -w -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j "$p-DNAT" 2>/dev/null || true
  iptables -w -t nat -D POSTROUTING -j "$p-POSTROUTING" 2>/dev/null || true
  local c
  for c in FORWARD ISOLATION-1 ISOLATION-2; do iptables -w -F "$p-$c" 2>/dev/null || true; done
  for c in FORWARD ISOLATION-1 ISOLATION-2; do iptables -w -X "$p-$c" 2>/dev/null || true; done
  for c in DNAT POSTROUTING; do iptables -w -t nat -F "$p-$c" 2>/dev/null || true; done
  for c in DNAT POSTROUTING; do iptables -w -t nat -X "$p-$c" 2>/dev/null || true; done
}

# curl_until PORT TEXT: GET 127.0.0.1:PORT until it answers TEXT (5 s); prints the last answer.
curl_until() {
  local out=""
  for _ in $(seq 50); do
    out=$(curl -s --max-time 1 "http://127.0.0.1:$1/") && [ "$out" == "$2" ] && break
    sleep 0.1
  done
  echo "$out"
}

# rules_until NAME RULES: waits (3 s) until that berthd's chains hold RULES rules; prints the count.
rules_until() {
  local n
  for _ in $(seq 30); do n=$(our_rules "$1"); [ "$n" == "$2" ] && break; sleep 0.1; done
  echo "$n"
}

# rebuilt_more LOG N: waits (3 s) until LOG says "rebuilt the firewall chains" more than N times.
rebuilt_more() {
  for _ in $(seq 30); do
    [ "$(grep -c "rebuilt the firewall chains" "$1")" -gt "$2" ] && return 0
    sleep 0.1
  done
  fail "the log does not say the chains were rebuilt again"
}

scenario_net_bridge_removed_under_a_running_daemon_is_rebuilt() {
  start_with_busybox nh
  local tag br gw uid side port log=$WORK/nh/berthd.log
  tag=$(net_tag nh)
  br="berth-$tag"
  gw=$(d nh network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}')
  uid=$(d nh network create side)
  side="br-${uid:0:12}"
  # (The create rewrote the chains, which the firewall watch checks after a
  # moment; let that pass, so that the start below is what finds the damage.)
  sleep 1.2
  # Someone deletes our bridges: the next start rebuilds them (it failed
  # with "no link berth-..." until a restart).
  ip link del "$br"
  ip link del "$side"
  expect_eq "$(d nh run --rm busybox echo ok)" "ok"
  ip -4 addr show "$br" | grep -q "inet $gw/" || fail "$br was not rebuilt with $gw"
  ip link show "$side" >/dev/null 2>&1 || fail "side's bridge was not rebuilt"
  grep -q "rebuilt bridge $br (it was gone)" "$log" || fail "the log does not say $br was rebuilt"
  grep -q "rebuilt bridge $side (it was gone)" "$log" || fail "the log does not say $side was rebuilt"
  expect_eq "$(d nh run --rm --network side busybox echo ok)" "ok"
  # Its address alone.
  ip addr flush dev "$br"
  expect_eq "$(d nh run --rm busybox echo ok)" "ok"
  ip -4 addr show "$br" | grep -q "inet $gw/" || fail "$gw was not put back on $br"
  grep -q "rebuilt bridge $br (it had lost its address)" "$log" || fail "the log does not say the address was put back"
  # The bridge and every chain: a published port answers on 127.0.0.1 again.
  ip link del "$br"
  remove_our_chains nh
  port=$(free_port)
  d nh run -d --name web -p "127.0.0.1:$port:80" busybox sh -c 'mkdir /www && echo healed > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
  expect_eq "$(curl_until "$port" healed)" "healed"
  grep -q "rebuilt the firewall chains" "$log" || fail "the log does not say the chains were rebuilt"
  # Nothing twice.
  expect_eq "$(iptables -S FORWARD | grep -c "BERTH-$tag")" "1"
  expect_eq "$(ip -4 -o addr show "$br" | wc -l)" "1"
  # The ports' rules go with the container, as before.
  d nh rm -f web >/dev/null
  for _ in $(seq 40); do iptables-save -t nat | grep -q -- "--dport $port " || break; sleep 0.05; done
  if iptables-save -t nat | grep -q -- "--dport $port "; then fail "the DNAT rule for $port stayed"; fi
}

scenario_net_chains_removed_under_a_running_daemon_come_back() {
  start_with_busybox nw
  local port rules log=$WORK/nw/berthd.log
  port=$(free_port)
  d nw run -d --name web -p "127.0.0.1:$port:80" busybox sh -c 'mkdir /www && echo back > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
  expect_eq "$(curl_until "$port" back)" "back"
  rules=$(our_rules nw)
  # A firewall reload that drops our chains: the running container's port
  # answers again, with no start to notice it.
  remove_our_chains nw
  rebuilt_more "$log" 0
  expect_eq "$(curl_until "$port" back)" "back"
  expect_eq "$(rules_until nw "$rules")" "$rules"
  # A flush of one chain alone.
  local n; n=$(grep -c "rebuilt the firewall chains" "$log")
  iptables -w -t nat -F "BERTH-$(net_tag nw)-DNAT"
  rebuilt_more "$log" "$n"
  expect_eq "$(curl_until "$port" back)" "back"
  expect_eq "$(rules_until nw "$rules")" "$rules"
}
