#!/usr/bin/env bash
# Builds berthd and berth-shim (release) into $CARGO_TARGET_DIR/release. The shim
# is then linked again statically: one runs per container, and a static binary
# maps only the libc it uses (about 0.8 MiB less RSS per shim than a dynamic one).
# Extra arguments go to the first cargo build (e.g. --all-targets).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/berth/target}
mkdir -p "$CARGO_TARGET_DIR"
cargo build --release --locked --workspace "$@"
# Only the final link of the shim changes: its dependencies are plain Rust.
cargo rustc --release --locked -p berth-shim --bin berth-shim -- -C target-feature=+crt-static
