# Registries as dockerd reaches them: per-registry trust from
# /etc/docker/certs.d/<host:port>/ca.crt, and every failure in dockerd's words
# (which name the cause). The TLS registry serves the suite's registry storage
# on the test daemon's own bridge address (dockerd takes loopback registries
# for insecure ones, so trust is only checked off loopback); its certs.d
# directory is removed when the scenario ends, however it ends.

scenario_registry_trust_from_certs_d_and_errors_in_dockerds_words() {
  start_berthd rt
  local gw port dir out certs
  gw=$(d rt network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
  port=$(free_port)
  dir=$WORK/rt-registry
  mkdir -p "$dir"
  # A CA of the test's own and a server certificate for the bridge address.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=berth-test-registry-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$gw" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$gw" > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: $gw:$port
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 100); do
    curl -s --cacert "$dir/ca.crt" "https://$gw:$port/v2/" >/dev/null && break
    sleep 0.05
  done
  # Trusted by nothing yet: Go's words for it.
  if out=$(d rt pull "$gw:$port/library/busybox" 2>&1); then fail "an untrusted registry was trusted"; fi
  expect_contains "$out" "Error response from daemon: Get \"https://$gw:$port/v2/\": x509: certificate signed by unknown authority"
  # Its CA in certs.d: the pull goes through, and what it pulled runs.
  certs=/etc/docker/certs.d/$gw:$port
  trap "rm -rf '$certs'" EXIT
  mkdir -p "$certs"
  cp "$dir/ca.crt" "$certs/ca.crt"
  d rt pull -q "$gw:$port/library/busybox" >/dev/null
  expect_eq "$(d rt run --rm "$gw:$port/library/busybox" echo trusted)" "trusted"
  rm -rf "$certs"
  # On loopback, as dockerd: insecure, so TLS is tried without checking the
  # certificate (this one names only the bridge address), then plain HTTP.
  local lport; lport=$(free_port)
  sed "s|addr: $gw:$port|addr: 127.0.0.1:$lport|" "$dir/config.yml" > "$dir/loopback.yml"
  docker-registry serve "$dir/loopback.yml" >"$dir/loopback.log" 2>&1 &
  echo $! > "$dir/bad.pid"  # (stopped with the rest by test-registry.sh stop)
  for _ in $(seq 100); do curl -sk "https://127.0.0.1:$lport/v2/" >/dev/null && break; sleep 0.05; done
  d rt pull -q "127.0.0.1:$lport/library/busybox" >/dev/null || fail "a loopback TLS registry did not pull"
  # Nothing listening: the address and the refusal.
  local closed; closed=$(free_port)
  if out=$(d rt pull "127.0.0.1:$closed/x" 2>&1); then fail "pulled from a closed port"; fi
  expect_eq "$(tail -n 1 <<<"$out")" \
    "Error response from daemon: Get \"http://127.0.0.1:$closed/v2/\": dial tcp 127.0.0.1:$closed: connect: connection refused"
  expect_eq "$(api rt -w ' %{http_code}' -X POST "http://x/images/create?fromImage=127.0.0.1:$closed/x&tag=latest")" \
    "{\"message\":\"Get \\\"http://127.0.0.1:$closed/v2/\\\": dial tcp 127.0.0.1:$closed: connect: connection refused\"} 500"
  # A repository or tag the registry does not have: 404, manifest unknown.
  if out=$(d rt pull "$REG/library/nosuch" 2>&1); then fail "pulled a missing repository"; fi
  expect_eq "$(tail -n 1 <<<"$out")" \
    "Error response from daemon: manifest for $REG/library/nosuch:latest not found: manifest unknown: manifest unknown"
  expect_eq "$(api rt -o /dev/null -w '%{http_code}' -X POST "http://x/images/create?fromImage=$REG/library/busybox&tag=nosuch")" "404"
}

# A registry that wants a client certificate (http.tls.clientcas): dockerd
# presents the identity certs.d/<host:port>/X.cert + X.key holds, and fails the
# pull, in its words, when the server refuses to go on without one or when a
# .cert lacks its .key (or a .key its .cert). The words are the reference
# dockerd 20.10's for the same registry and the same directories.
scenario_registry_client_certificate_from_certs_d() {
  start_berthd mtls
  local gw port dir out certs
  gw=$(d mtls network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
  port=$(free_port)
  dir=$WORK/mtls-registry
  certs=/etc/docker/certs.d/$gw:$port
  mkdir -p "$dir"
  # However the scenario ends: the certs.d directory and the registry go.
  trap "rm -rf '$certs'; [ -f '$dir/pid' ] && kill \$(cat '$dir/pid') 2>/dev/null; true" EXIT
  # A CA of the test's own, a server certificate for the bridge address and a
  # client certificate, both signed by it.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=berth-test-mtls-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$gw" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$gw" > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=berth-test-client \
    -keyout "$dir/client.key" -out "$dir/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$dir/client.ext"
  openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/client.ext" -out "$dir/client.cert" 2>/dev/null
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: $gw:$port
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
    clientcas:
      - $dir/ca.crt
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! > "$dir/pid"
  local up=""
  for _ in $(seq 100); do
    curl -sf --cacert "$dir/ca.crt" --cert "$dir/client.cert" --key "$dir/client.key" \
      "https://$gw:$port/v2/" >/dev/null && { up=1; break; }
    sleep 0.05
  done
  [ -n "$up" ] || { cat "$dir/registry.log"; fail "the registry did not start"; }
  local image=$gw:$port/library/busybox
  mkdir -p "$certs"
  cp "$dir/ca.crt" "$certs/ca.crt"
  # Trusted, but no identity to present: the server ends the handshake.
  if out=$(d mtls pull "$image" 2>&1); then fail "pulled without a client certificate"; fi
  expect_eq "$(tail -n 1 <<<"$out")" \
    "Error response from daemon: Get \"https://$gw:$port/v2/\": remote error: tls: bad certificate"
  # A certificate without its key, and a key without its certificate.
  cp "$dir/client.cert" "$certs/client.cert"
  if out=$(d mtls pull "$image" 2>&1); then fail "pulled with a client certificate and no key"; fi
  expect_eq "$(tail -n 1 <<<"$out")" \
    "Error response from daemon: missing key client.key for client certificate client.cert. Note that CA certificates should use the extension .crt"
  expect_eq "$(api mtls -w ' %{http_code}' -X POST "http://x/images/create?fromImage=$image&tag=latest")" \
    '{"message":"missing key client.key for client certificate client.cert. Note that CA certificates should use the extension .crt"} 500'
  rm "$certs/client.cert"
  cp "$dir/client.key" "$certs/client.key"
  if out=$(d mtls pull "$image" 2>&1); then fail "pulled with a client key and no certificate"; fi
  expect_eq "$(tail -n 1 <<<"$out")" \
    "Error response from daemon: Missing client certificate client.cert for key client.key"
  # Both: the pull goes through, and what it pulled runs.
  cp "$dir/client.cert" "$certs/client.cert"
  d mtls pull -q "$image" >/dev/null
  expect_eq "$(d mtls run --rm "$image" echo mutual)" "mutual"
  expect_eq "$(d mtls images --format '{{.Repository}}:{{.Tag}}')" "$image:latest"
}
