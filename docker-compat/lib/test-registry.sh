#!/usr/bin/env bash
# A private registry for the tests: the CNCF distribution registry (Debian's
# docker-registry) on a free loopback port, with its own storage, holding the
# fixture images built by fixtures.py.
#
#   test-registry.sh start DIR   builds, starts, pushes; prints the port; pid in DIR/pid
#   test-registry.sh stop DIR    stops it (by pid) and removes DIR
#
# Pushed: library/{busybox,layers,traversal,symlinkesc,badblob}:latest; badblob's
# layer blob is then overwritten in storage, so the registry serves content that
# does not match its digest.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "$cmd" in
stop)
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
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
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
echo $! > "$dir/pid"
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.05
done
push() { # layout-name repo
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$dir/oci/$1:latest" "docker://127.0.0.1:$port/library/$2:latest"
}
push busybox busybox
push layers layers
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
echo "$port"
