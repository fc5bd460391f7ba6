# How containers find each other, as on dockerd: the DNS server at 127.0.0.11
# on user-defined networks (names, aliases, short IDs, name.network, PTR, an
# empty answer for a known name's missing type, tcp, forwarding to --dns),
# resolv.conf and /etc/hosts as connect and disconnect rewrite them, legacy
# links, MAC addresses and network names. The expected words and files are
# the reference dockerd 20.10's. No name is sent to the host's resolver: the
# one forwarded name goes to a fake upstream on a loopback address.

# dns_tcp NAME CONTAINER QNAME: asks 127.0.0.11 over tcp from inside the
# container's network namespace; prints rcode and the A answers.
dns_tcp() {
  local pid; pid=$(d "$1" inspect -f '{{.State.Pid}}' "$2")
  nsenter -t "$pid" -n python3 - "$3" <<'PY'
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.create_connection(("127.0.0.11", 53), timeout=5)
s.sendall(struct.pack(">H", len(q)) + q)
n = struct.unpack(">H", s.recv(2))[0]
r = b""
while len(r) < n:
    r += s.recv(n - len(r))
an = struct.unpack(">H", r[6:8])[0]
print("rcode", r[3] & 0xF, "answers", an, ".".join(str(b) for b in r[-4:]) if an else "")
PY
}

scenario_names_dns_at_127_0_0_11_as_dockerd() {
  start_with_busybox dn
  d dn network create app >/dev/null
  local id ip out
  id=$(d dn run -d --name web --network app --network-alias www --network-alias Web-Alias busybox sleep 300)
  d dn run -d --name cli --network app busybox sleep 300 >/dev/null
  d dn network create other >/dev/null
  d dn run -d --name elsewhere --network other busybox sleep 300 >/dev/null
  ip=$(d dn inspect -f '{{.NetworkSettings.Networks.app.IPAddress}}' web)
  # resolv.conf points at the embedded server, as dockerd writes it.
  out=$(d dn exec cli cat /etc/resolv.conf)
  expect_contains "$out" "nameserver 127.0.0.11"
  expect_eq "$(grep -c nameserver <<<"$out")" "1"
  expect_contains "$out" "ndots:0"
  expect_eq "$(d dn run --rm --network app --dns 1.2.3.4 --dns-search example.com --dns-option timeout:2 busybox cat /etc/resolv.conf)" \
    "$(printf 'search example.com\nnameserver 127.0.0.11\noptions timeout:2 ndots:0')"
  expect_eq "$(d dn run --rm --network app --dns-search . --dns-option ndots:5 --dns-option attempts:3 busybox cat /etc/resolv.conf)" \
    "$(printf 'nameserver 127.0.0.11\noptions ndots:5 attempts:3')"
  # On the default bridge, with overrides: search first, as dockerd.
  expect_eq "$(d dn run --rm --dns 10.9.9.9 --dns-search corp.test --dns-option timeout:2 busybox cat /etc/resolv.conf)" \
    "$(printf 'search corp.test\nnameserver 10.9.9.9\noptions timeout:2')"
  # Names, aliases (any case), the short ID, name.network.
  for name in web WEB www web-alias "${id:0:12}" web.app www.app; do
    out=$(d dn exec cli nslookup "$name" 2>&1) || fail "nslookup $name: $out"
    expect_contains "$out" "Server:		127.0.0.11"
    expect_contains "$out" "Address: $ip"
  done
  d dn exec cli ping -c 1 -W 2 www | grep -q "1 packets received" || fail "ping www"
  # Not on this network, unknown, or on another network: NXDOMAIN.
  for name in elsewhere nosuchname web.other; do
    if out=$(d dn exec cli nslookup "$name" 2>&1); then fail "$name resolved: $out"; fi
    expect_contains "$out" "server can't find $name: NXDOMAIN"
  done
  # A known name without AAAA records: an empty NOERROR (busybox exits 0).
  out=$(d dn exec cli nslookup -type=aaaa web 2>&1) || fail "AAAA of web: $out"
  if grep -q "^Address: " <<<"$out"; then fail "an AAAA answer for a v4-only name: $out"; fi
  # The name of an address: name.network.
  out=$(d dn exec cli nslookup "$ip" 2>&1) || fail "PTR: $out"
  expect_contains "$out" "name = web.app"
  # tcp answers too.
  expect_eq "$(dns_tcp dn cli web)" "rcode 0 answers 1 $ip"
  # Other names go to the container's --dns from the daemon's namespace
  # (so a loopback upstream works): a fake one on 127.0.0.X:53 answers.
  local up="127.0.0.$((RANDOM % 200 + 20))"
  python3 - "$up" "$WORK/dn/upstream.ready" >"$WORK/dn/upstream.log" 2>&1 <<'PY' &
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
open(sys.argv[2], "w").close()
s.settimeout(60)
while True:
    q, peer = s.recvfrom(512)
    end = q.index(b"\0", 12) + 5
    r = q[:2] + b"\x81\x80" + q[4:6] + b"\0\1\0\0\0\0" + q[12:end]
    r += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 1, 2, 3])
    s.sendto(r, peer)
PY
  local fake=$!
  echo "$fake" >> "$PIDFILE"
  for _ in $(seq 100); do [ -f "$WORK/dn/upstream.ready" ] && break; sleep 0.05; done
  out=$(d dn run --rm --network app --dns "$up" busybox nslookup forwarded.example.test 2>&1) || fail "forwarding: $out"
  expect_contains "$out" "Address: 10.1.2.3"
  kill "$fake" 2>/dev/null || true
  # A daemon killed and started again serves the running containers' DNS.
  stop_berthd dn KILL
  START_WAIT=60 start_berthd dn --registry-mirror "http://$REG"
  out=$(d dn exec cli nslookup www 2>&1) || fail "after a restart: $out"
  expect_contains "$out" "Address: $ip"
}

scenario_names_connect_rewrites_resolv_conf_and_hosts() {
  start_with_busybox dc
  d dc network create app >/dev/null
  d dc run -d --name web --network app busybox sleep 300 >/dev/null
  d dc run -d --name box busybox sleep 300 >/dev/null
  local before host bip aip
  before=$(d dc exec box cat /etc/resolv.conf)
  if grep -q 127.0.0.11 <<<"$before"; then fail "127.0.0.11 on the default bridge"; fi
  host=$(d dc inspect -f '{{.Config.Hostname}}' box)
  bip=$(d dc inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' box)
  d dc network connect app box
  aip=$(d dc inspect -f '{{.NetworkSettings.Networks.app.IPAddress}}' box)
  expect_contains "$(d dc exec box cat /etc/resolv.conf)" "nameserver 127.0.0.11"
  expect_eq "$(d dc exec box tail -n 2 /etc/hosts)" "$(printf '%s\t%s\n%s\t%s' "$bip" "$host" "$aip" "$host")"
  d dc exec box nslookup web >/dev/null 2>&1 || fail "web does not resolve after connect"
  d dc exec web nslookup box 2>&1 | grep -q "Address: $aip" || fail "box does not resolve on app"
  # As dockerd: the server stays (resolv.conf too), the name lines all go.
  d dc network disconnect app box
  expect_contains "$(d dc exec box cat /etc/resolv.conf)" "nameserver 127.0.0.11"
  if d dc exec box grep -q "$host" /etc/hosts; then fail "own lines left after disconnect"; fi
  if out=$(d dc exec box nslookup web 2>&1); then fail "web resolved after disconnect: $out"; fi
  expect_contains "$out" "NXDOMAIN"
}

scenario_names_legacy_links_as_dockerd() {
  start_with_busybox lk
  d lk run -d --name db -e SECRET=x -e 'FOO=a b' --expose 5432 busybox sleep 300 >/dev/null
  local dbip dbhost out
  dbip=$(d lk inspect -f '{{.NetworkSettings.IPAddress}}' db)
  dbhost=$(d lk inspect -f '{{.Config.Hostname}}' db)
  out=$(d lk run --rm --link db:alias busybox sh -c 'env | grep ^ALIAS_ | sort; tail -n 2 /etc/hosts')
  expect_eq "$(grep -v ^ALIAS_NAME= <<<"$out" | head -n 7)" "ALIAS_ENV_FOO=a b
ALIAS_ENV_SECRET=x
ALIAS_PORT=tcp://$dbip:5432
ALIAS_PORT_5432_TCP=tcp://$dbip:5432
ALIAS_PORT_5432_TCP_ADDR=$dbip
ALIAS_PORT_5432_TCP_PORT=5432
ALIAS_PORT_5432_TCP_PROTO=tcp"
  grep -Eq '^ALIAS_NAME=/[a-z]+_[a-z]+/alias$' <<<"$out" || fail "ALIAS_NAME: $out"
  expect_contains "$out" "ALIAS_PORT_5432_TCP=tcp://$dbip:5432"
  expect_contains "$out" "$(printf '%s\talias %s db' "$dbip" "$dbhost")"
  if grep -q "ALIAS_ENV_PATH\|ALIAS_ENV_HOME" <<<"$out"; then fail "PATH or HOME carried over"; fi
  # The linking container's variables, in dockerd's order (pid 1's environ).
  d lk run -d --name linker -e MINE=1 --link db:db busybox sleep 300 >/dev/null
  out=$(d lk exec linker cat /proc/1/environ | tr '\0' '\n')
  expect_eq "$(sed -n '3p;8p' <<<"$out")" "DB_PORT=tcp://$dbip:5432
DB_NAME=/linker/db"
  expect_contains "$out" "DB_ENV_SECRET=x"
  expect_contains "$out" "MINE=1"
  expect_eq "$(d lk inspect -f '{{json .HostConfig.Links}}' linker)" '["/db:/linker/db"]'
  # The API lists the linked container under the link's name too.
  expect_eq "$(api lk 'http://x/containers/json?filters=%7B%22name%22%3A%5B%22%5Edb%24%22%5D%7D' |
    python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)[0]["Names"]))')" "/db /linker/db"
  expect_eq "$(d lk exec linker tail -n 2 /etc/hosts | head -n 1)" "$(printf '%s\tdb %s' "$dbip" "$dbhost")"
  # rm --link removes the link, never a container.
  expect_eq "$(d lk rm --link linker/db)" "linker/db"
  expect_eq "$(d lk ps --format '{{.Names}}' | sort | tr '\n' ' ')" "db linker "
  expect_eq "$(d lk inspect -f '{{json .HostConfig.Links}}' linker)" "null"
  if d lk exec linker grep -q "	db " /etc/hosts; then fail "the link's hosts line stayed"; fi
  if out=$(d lk rm --link linker/db 2>&1); then fail "removed a link twice"; fi
  expect_eq "$out" "Error response from daemon: No such container: linker/db"
  expect_eq "$(api lk -w ' %{http_code}' -X DELETE 'http://x/containers/db?link=1')" \
    '{"message":"Conflict, cannot remove the default link name of the container"} 500'
  expect_eq "$(d lk ps -q | wc -l)" "2"
  # A link to a container that does not exist: dockerd's words, nothing made.
  if out=$(d lk create --name bad --link nosuch:x busybox true 2>&1); then fail "a link to nothing was accepted"; fi
  expect_eq "$out" "Error response from daemon: could not get container for nosuch: No such container: nosuch"
  if d lk container inspect bad >/dev/null 2>&1; then fail "the refused container exists"; fi
  # A stopped one: the start fails.
  d lk create --name later busybox true >/dev/null
  d lk create --name wants --link later:l busybox true >/dev/null
  if out=$(d lk start wants 2>&1); then fail "linked to a stopped container"; fi
  expect_contains "$out" "Cannot link to a non running container: /later AS /wants/l"
  # On a user-defined network a link is a name for its container only.
  d lk network create app >/dev/null
  d lk network connect app db
  d lk run -d --name ulink --network app --link db:dbalias busybox sleep 300 >/dev/null
  expect_eq "$(d lk inspect -f '{{json .HostConfig.Links}} {{json .NetworkSettings.Networks.app.Links}}' ulink)" \
    'null ["db:dbalias"]'
  d lk exec ulink nslookup dbalias 2>&1 | grep -q "Address: $(d lk inspect -f '{{.NetworkSettings.Networks.app.IPAddress}}' db)" ||
    fail "dbalias does not resolve for its container"
  if d lk run --rm --network app busybox nslookup dbalias >/dev/null 2>&1; then fail "dbalias resolved for another container"; fi
}

scenario_names_mac_addresses_and_network_names() {
  start_with_busybox mn
  local out
  # Config.MacAddress (what older clients send) sets the primary interface's.
  api mn -X POST -H 'Content-Type: application/json' 'http://x/containers/create?name=mac' \
    -d '{"Image":"busybox","Cmd":["sleep","300"],"MacAddress":"02:42:AC:11:00:99"}' >/dev/null
  d mn start mac >/dev/null
  expect_contains "$(d mn exec mac ip link show eth0)" "link/ether 02:42:ac:11:00:99"
  expect_eq "$(d mn inspect -f '{{.NetworkSettings.MacAddress}} {{.NetworkSettings.Networks.bridge.MacAddress}}' mac)" \
    "02:42:ac:11:00:99 02:42:ac:11:00:99"
  expect_contains "$(d mn network inspect bridge -f '{{range .Containers}}{{.Name}}={{.MacAddress}} {{end}}')" "mac=02:42:ac:11:00:99"
  # The CLI's --mac-address (per network, API 1.44+) on a user network.
  d mn network create "test 01" >/dev/null
  d mn run -d --name mac2 --network "test 01" --mac-address 02:42:ac:11:00:98 busybox sleep 300 >/dev/null
  expect_contains "$(d mn exec mac2 ip link show eth0)" "link/ether 02:42:ac:11:00:98"
  expect_eq "$(d mn inspect -f '{{(index .NetworkSettings.Networks "test 01").MacAddress}}' mac2)" "02:42:ac:11:00:98"
  # A bad one is refused at start, in dockerd's words.
  api mn -X POST -H 'Content-Type: application/json' 'http://x/containers/create?name=badmac' \
    -d '{"Image":"busybox","Cmd":["sleep","300"],"MacAddress":"zz"}' >/dev/null
  if out=$(d mn start badmac 2>&1); then fail "mac zz was accepted"; fi
  expect_contains "$out" "address zz: invalid MAC address"
  # Network names as dockerd takes them: spaces, slashes, colons; not blank.
  for n in "a/b" "a:b" "x\$y"; do
    d mn network create "$n" >/dev/null || fail "network name $n refused"
    d mn run --rm --network "$n" busybox true || fail "a container on network $n"
  done
  expect_eq "$(api mn -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":""}')" \
    '{"message":"invalid name: "} 500'
  expect_eq "$(api mn -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"bridge"}')" \
    '{"message":"operation is not permitted on predefined bridge network "} 403'
  d mn rm -f mac mac2 badmac >/dev/null
  d mn network rm "test 01" "a/b" "a:b" "x\$y" >/dev/null
}

scenario_names_bridge_driver_options_as_dockerd() {
  start_with_busybox bo
  local out port
  # The containers' MTU.
  d bo network create -o com.docker.network.driver.mtu=1400 small >/dev/null
  expect_contains "$(d bo run --rm --network small busybox ip link show eth0)" "mtu 1400"
  # No traffic between containers, but the gateway and names still answer.
  d bo network create -o com.docker.network.bridge.enable_icc=false apart >/dev/null
  d bo run -d --name a1 --network apart busybox sleep 300 >/dev/null
  d bo run -d --name a2 --network apart busybox sleep 300 >/dev/null
  local ip2 gw
  ip2=$(d bo inspect -f '{{.NetworkSettings.Networks.apart.IPAddress}}' a2)
  gw=$(d bo inspect -f '{{.NetworkSettings.Networks.apart.Gateway}}' a2)
  if d bo exec a1 ping -c 1 -W 1 "$ip2" >/dev/null 2>&1; then fail "icc=false: a1 reached a2"; fi
  d bo exec a1 ping -c 1 -W 2 "$gw" >/dev/null || fail "icc=false: the gateway does not answer"
  d bo exec a1 nslookup a2 2>&1 | grep -q "Address: $ip2" || fail "icc=false: a2 does not resolve"
  # No masquerade rule for a network that asks for none.
  d bo network create -o com.docker.network.bridge.enable_ip_masquerade=false nomasq >/dev/null
  local subnet; subnet=$(d bo network inspect nomasq -f '{{(index .IPAM.Config 0).Subnet}}')
  if iptables-save -t nat | grep -q -- "-s $subnet .*MASQUERADE"; then fail "a masquerade rule for $subnet"; fi
  expect_eq "$(iptables-save -t nat | grep -c -- "-s $(d bo network inspect small -f '{{(index .IPAM.Config 0).Subnet}}') .*MASQUERADE")" "1"
  # Ports published without an address listen on host_binding_ipv4.
  d bo network create -o com.docker.network.bridge.host_binding_ipv4=127.0.0.1 local >/dev/null
  port=$(free_port)
  d bo run -d --name hb --network local -p "$port:80" busybox sh -c 'echo ok > /i; exec httpd -f -p 80 -h /' >/dev/null
  expect_eq "$(d bo port hb)" "80/tcp -> 127.0.0.1:$port"
  expect_eq "$(d bo inspect -f '{{json .HostConfig.PortBindings}}' hb)" "{\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"$port\"}]}"
  for _ in $(seq 50); do out=$(curl -s --max-time 2 "http://127.0.0.1:$port/i") && [ -n "$out" ] && break; sleep 0.1; done
  expect_eq "$out" "ok"
  # Bad values, in dockerd's words and status.
  expect_eq "$(api bo -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"x","Options":{"com.docker.network.driver.mtu":"abc"}}')" \
    '{"message":"failed to parse com.docker.network.driver.mtu value: abc (strconv.Atoi: parsing \"abc\": invalid syntax)"} 500'
  expect_eq "$(api bo -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"x","Options":{"com.docker.network.driver.mtu":"-1"}}')" \
    '{"message":"invalid MTU number: -1"} 500'
  expect_eq "$(api bo -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"x","Options":{"com.docker.network.bridge.enable_icc":"maybe"}}')" \
    '{"message":"failed to parse com.docker.network.bridge.enable_icc value: maybe (strconv.ParseBool: parsing \"maybe\": invalid syntax)"} 500'
  expect_eq "$(api bo -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"x","Options":{"com.docker.network.bridge.host_binding_ipv4":"notanip"}}')" \
    '{"message":"failed to parse com.docker.network.bridge.host_binding_ipv4 value: notanip (nil ip)"} 500'
  expect_eq "$(api bo -w ' %{http_code}' -X POST -H 'Content-Type: application/json' http://x/networks/create -d '{"Name":"x","Ingress":true}')" \
    '{"message":"Ingress network can only be global scope network"} 403'
  if d bo network inspect x >/dev/null 2>&1; then fail "a refused network exists"; fi
}

scenario_names_network_container_shares_hosts_and_hostname() {
  start_with_busybox nx
  d nx run -d --name web --add-host foo:1.2.3.4 busybox sleep 300 >/dev/null
  local host ip out
  host=$(d nx inspect -f '{{.Config.Hostname}}' web)
  ip=$(d nx inspect -f '{{.NetworkSettings.IPAddress}}' web)
  # As dockerd: the joiner has web's hostname and web's /etc files.
  out=$(d nx run --rm --network container:web busybox sh -c 'hostname; cat /etc/hostname; tail -n 2 /etc/hosts; echo $HOSTNAME')
  expect_eq "$out" "$(printf '%s\n%s\n1.2.3.4\tfoo\n%s\t%s\n%s' "$host" "$host" "$ip" "$host" "$host")"
  if out=$(d nx run --rm --network container:web -h x busybox true 2>&1); then fail "-h with container: was accepted"; fi
  expect_contains "$out" "conflicting options: hostname and the network mode"
}
