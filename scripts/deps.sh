#!/usr/bin/env bash
# Installs what building and testing berthd needs on a fresh Debian machine.
# Idempotent: packages already present are not fetched again.
set -euo pipefail
need=()
# systemd: systemd-analyze and systemd-socket-activate for the tests of the units
# (installing it boots nothing); dpkg-dev: dpkg-shlibdeps for scripts/package.sh;
# python3-prometheus-client: the Prometheus text parser that reads /metrics.
for pkg in libclang-dev libseccomp-dev pkg-config clang openssl curl python3 ca-certificates docker-registry skopeo busybox-static apache2-utils python3-cryptography python3-prometheus-client procps runc iptables iproute2 passwd systemd dpkg-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# The docker CLI the compatibility suite drives; Debian's client only where none is on PATH.
command -v docker >/dev/null 2>&1 || need+=(docker.io)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as docker-registry start a service on install; the tests start
  # their own, on free loopback ports. Block service starts for this install only.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo is not installed (rustup)"; exit 1; }
