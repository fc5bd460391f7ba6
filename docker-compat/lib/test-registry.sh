#!/usr/bin/env bash
# A private registry for the tests: the CNCF distribution registry (Debian's
# docker-registry) on a free loopback port, with its own storage, holding the
# fixture images built by fixtures.py.
#
#   test-registry.sh start DIR   builds, starts, pushes; prints the port; pid in DIR/pid
#   test-registry.sh stop DIR    stops it (by pid) and removes DIR
#
# Alongside it (without auth), bad-registry.py on another port (DIR/bad.port, pid
# DIR/bad.pid) serves a manifest that is not JSON and a truncated layer.
#
# With BERTH_REGISTRY_AUTH=basic|token and BERTH_REGISTRY_USER/_PASSWORD set, the
# registry requires that user: basic (htpasswd) or bearer tokens from
# token-server.py (started alongside, pid in DIR/token.pid). Only busybox is pushed.
#
# Pushed: library/{busybox,layers,deep,traversal,symlinkesc,badblob}:latest (deep:
# 125 layers); badblob's
# layer blob is then overwritten in storage, so the registry serves content that
# does not match its digest.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "$cmd" in
stop)
  for f in "$dir/pid" "$dir/token.pid" "$dir/bad.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  exit 0
  ;;
start) ;;
*) echo "usage: test-registry.sh start|stop DIR" >&2; exit 2 ;;
esac

mkdir -p "$dir"
python3 "$here/fixtures.py" "$dir/oci"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
auth=${BERTH_REGISTRY_AUTH:-}
user=${BERTH_REGISTRY_USER:-}
password=${BERTH_REGISTRY_PASSWORD:-}
case "$auth" in
"") ;;
basic)
  htpasswd -Bbn "$user" "$password" > "$dir/htpasswd"
  printf 'auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n' "$dir/htpasswd" >> "$dir/config.yml"
  ;;
token)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=berth-test-token -keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null
  python3 "$here/token-server.py" "$dir/token.port" "$dir/token.key" "$dir/token.crt" \
    berth-test-issuer "$user" "$password" >"$dir/token.log" 2>&1 &
  echo $! > "$dir/token.pid"
  for _ in $(seq 100); do [ -f "$dir/token.port" ] && break; sleep 0.05; done
  printf 'auth:\n  token:\n    realm: http://127.0.0.1:%s/token\n    service: berth-test\n    issuer: berth-test-issuer\n    rootcertbundle: %s\n' \
    "$(cat "$dir/token.port")" "$dir/token.crt" >> "$dir/config.yml"
  ;;
*) echo "BERTH_REGISTRY_AUTH: basic or token" >&2; exit 2 ;;
esac
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
echo $! > "$dir/pid"
for _ in $(seq 100); do
  # Up when it answers at all (401 with auth).
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null || true)
  [ "$code" = 200 ] || [ "$code" = 401 ] && break
  sleep 0.05
done
creds=()
[ -n "$auth" ] && creds=(--dest-creds "$user:$password")
push() { # layout-name repo
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "${creds[@]}" "oci:$dir/oci/$1:latest" "docker://127.0.0.1:$port/library/$2:latest"
}
push busybox busybox
if [ -n "$auth" ]; then
  echo "$port"
  exit 0
fi
push layers layers
push deep deep
push traversal traversal
push symlinkesc symlinkesc
push badblob badblob
# Corrupt badblob's layer in storage (same length, other bytes): the registry serves it
# as is, and a puller must notice the digest mismatch.
layer=$(python3 -c 'import json,sys;m=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"].split(":")[1];print(json.load(open(sys.argv[1]+"/blobs/sha256/"+m))["layers"][0]["digest"].split(":")[1])' "$dir/oci/badblob")
blob="$dir/storage/docker/registry/v2/blobs/sha256/${layer:0:2}/$layer/data"
python3 - "$blob" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(len(b) // 2, len(b) // 2 + 64):
    b[i] ^= 0xFF
open(p, "wb").write(bytes(b))
PY
python3 "$here/bad-registry.py" "$dir/oci" "$dir/bad.port" >"$dir/bad.log" 2>&1 &
echo $! > "$dir/bad.pid"
for _ in $(seq 100); do [ -f "$dir/bad.port" ] && break; sleep 0.05; done
echo "$port"
