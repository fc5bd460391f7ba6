#!/usr/bin/env bash
# Runs every test: unit and integration tests (cargo, release profile, so RocksDB is
# built once), then the docker CLI compatibility suite. Run as root (the tests
# start real daemons). `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# RocksDB makes a cold build long (~15 min on 2 cores): keep the target dir outside
# the clone so every clone on this machine shares it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/berth/target}
mkdir -p "$CARGO_TARGET_DIR"
bash scripts/build.sh --all-targets
status=0
cargo test --release --locked --workspace -- --test-threads=4 || status=1
BERTHD=$CARGO_TARGET_DIR/release/berthd docker-compat/run || status=1
exit $status
