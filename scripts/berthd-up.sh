#!/usr/bin/env bash
# Sets up and starts berthd on this machine: installs the build dependencies,
# builds the release binary, and runs it in the foreground on
# unix:///var/run/berth.sock (extra arguments go to berthd). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/berth/target}
mkdir -p "$CARGO_TARGET_DIR"
bash scripts/build.sh
# berthd finds its shim beside itself.
install -m 0755 "$CARGO_TARGET_DIR/release/berthd" "$CARGO_TARGET_DIR/release/berth-shim" /usr/local/bin/
echo "berthd: starting; try: docker -H unix:///var/run/berth.sock version"
exec /usr/local/bin/berthd "$@"
