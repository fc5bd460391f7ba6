#!/usr/bin/env bash
# Builds the Debian package of berthd with dpkg-deb:
#
#   scripts/package.sh [OUT.deb]    # default: $CARGO_TARGET_DIR/berth_<version>_<arch>.deb
#
# It holds /usr/bin/berthd and /usr/bin/berth-shim (berthd runs the shim found
# beside itself), the systemd units of contrib/systemd/ under /lib/systemd/system/,
# /etc/berth/daemon.json (berthd's default --config-file; a conffile) and the docs.
# The binaries are the release builds in $CARGO_TARGET_DIR/release/; when one is
# missing, scripts/build.sh makes them first. Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/berth/target}
bin=$CARGO_TARGET_DIR/release
if [ ! -x "$bin/berthd" ] || [ ! -x "$bin/berth-shim" ]; then
  bash scripts/build.sh >&2
fi
# build.sh links the shim again statically after cargo's dynamic link: a dynamic
# one here is a build cut short (or in progress), not something to ship.
if readelf -d "$bin/berth-shim" | grep -q '(NEEDED)'; then
  echo "package: $bin/berth-shim is linked dynamically; run scripts/build.sh" >&2
  exit 1
fi

# The version of the berth crate ([package] of the workspace's Cargo.toml).
version=$(awk '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' Cargo.toml)
[ -n "$version" ] || { echo "package: no version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)
out=${1:-$CARGO_TARGET_DIR/berth_${version}_${arch}.deb}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# debian/berth/ is the package's tree: where dpkg-shlibdeps expects the binaries.
pkg=$stage/debian/berth
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/berth" "$pkg/usr/share/doc/berth"
# Stripped as dh_strip strips: the symbols are most of berthd's size.
for b in berthd berth-shim; do
  install -m 0755 "$bin/$b" "$pkg/usr/bin/$b"
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$pkg/usr/bin/$b"
done
install -m 0644 contrib/systemd/berthd.service contrib/systemd/berthd.socket "$pkg/lib/systemd/system/"
# Empty: every key has berthd's default. berthd refuses unknown keys, and JSON
# has no comments, so the file says nothing more.
echo '{}' > "$pkg/etc/berth/daemon.json"
chmod 0644 "$pkg/etc/berth/daemon.json"
install -m 0644 README.md "$pkg/usr/share/doc/berth/README.md"
cat > "$pkg/usr/share/doc/berth/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: berth

Files: *
Copyright: The Berth authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.
EOF
chmod 0644 "$pkg/usr/share/doc/berth/copyright"

echo /etc/berth/daemon.json > "$pkg/DEBIAN/conffiles"

# The groups the socket unit names must exist: systemd refuses to start a socket
# whose SocketGroup is unknown. As docker's packages do, made on first install.
cat > "$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "$2" ]; then
	if ! getent group docker >/dev/null; then
		groupadd --system docker
	fi
fi
# Units are not enabled or started here: `systemctl enable --now berthd.socket`.
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
cat > "$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
EOF
# Removing the package stops the service and its socket, as dh_installsystemd's
# prerm does; containers go on under their shims (KillMode=process).
cat > "$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl --system stop berthd.service berthd.socket >/dev/null || true
fi
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/postrm" "$pkg/DEBIAN/prerm"

# Shared libraries berthd links (the shim is static), with the versions their
# symbols need; then what berthd runs: iptables (ip6tables, *-restore), modprobe
# (kmod), ps for `docker top` (procps), useradd/usermod for userns-remap and
# groupadd in postinst (passwd).
printf 'Source: berth\n\nPackage: berth\nArchitecture: any\n' > "$stage/debian/control"
shlibs=$(cd "$stage" && dpkg-shlibdeps -O debian/berth/usr/bin/berthd | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package: dpkg-shlibdeps found no libraries" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: berth
Version: $version
Architecture: $arch
Maintainer: The Berth authors <maintainers@berth.invalid>
Installed-Size: $size
Section: admin
Priority: optional
Depends: $shlibs, iptables, kmod, procps, passwd
Recommends: ca-certificates
Description: container engine that speaks the Docker Engine API
 berthd serves the Docker Engine API on /run/berth.sock (socket activated by
 berthd.socket), so the docker CLI, Compose and other Docker clients drive it
 as they drive dockerd. Each container runs under a small static shim and
 outlives a restart of the daemon.
EOF

mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group --build "$pkg" "$out" >&2
echo "$out"
