# shellcheck shell=bash disable=SC2154 # $root, $WORK, $REG, $PIDFILE: set by docker-compat/run
# berthd as a host service: the systemd units of contrib/systemd/, a berthd
# started from a socket as systemd starts it, and the .deb of scripts/package.sh.
# Nothing here needs systemd running (this machine boots none): systemd-analyze
# and systemd-socket-activate come with Debian's systemd package.

# verify_units DIR: `systemd-analyze verify` of DIR's berthd.service and
# berthd.socket; prints what it printed, fails when it exits non-zero or prints
# anything. It reports problems such as an unknown key only as a warning on
# stderr and still exits 0, so the silence is the check.
verify_units() {
  local out code=0
  out=$(cd "$1" && systemd-analyze verify berthd.service berthd.socket 2>&1) || code=$?
  echo "$out"
  [ "$code" -eq 0 ] && [ -z "$out" ]
}

scenario_systemd_units_verify() {
  local dir=$WORK/units
  rm -rf "$dir"
  mkdir -p "$dir"
  # verify checks that ExecStart's binary exists: the units point at $BERTHD.
  sed "s|/usr/bin/berthd|$BERTHD|g" "$root/contrib/systemd/berthd.service" > "$dir/berthd.service"
  cp "$root/contrib/systemd/berthd.socket" "$dir/"
  expect_eq "$(grep '^ExecStart=' "$dir/berthd.service")" "ExecStart=$BERTHD -H fd://"
  local out
  out=$(verify_units "$dir") || fail "systemd-analyze verify: $out"
  # What dockerd's units promise, in ours.
  local unit; unit=$(cat "$root/contrib/systemd/berthd.service")
  # shellcheck disable=SC2016 # $MAINPID is systemd's, literally in the unit
  for line in 'ExecStart=/usr/bin/berthd -H fd://' 'Requires=berthd.socket' 'Delegate=yes' \
    'KillMode=process' 'LimitNOFILE=infinity' 'LimitNPROC=infinity' 'TasksMax=infinity' \
    'ExecReload=/bin/kill -s HUP $MAINPID' 'Restart=always' 'StartLimitBurst=3' 'StartLimitIntervalSec=60'; do
    grep -qxF "$line" <<<"$unit" || fail "berthd.service has no line [$line]"
  done
  if grep -q -- '--containerd' <<<"$unit"; then fail "berthd.service names a containerd"; fi
  local socket; socket=$(cat "$root/contrib/systemd/berthd.socket")
  for line in 'ListenStream=/run/berth.sock' 'SocketMode=0660' 'SocketGroup=docker'; do
    grep -qxF "$line" <<<"$socket" || fail "berthd.socket has no line [$line]"
  done
  # The check above fails on a broken unit: a misspelled key, a missing binary.
  sed -i 's/^Delegate=yes/Delegat=yes/' "$dir/berthd.service"
  if out=$(verify_units "$dir"); then fail "a misspelled key passed systemd-analyze verify"; fi
  expect_contains "$out" "Unknown key 'Delegat' in section [Service]"
  sed "s|/usr/bin/berthd|$WORK/no/berthd|g" "$root/contrib/systemd/berthd.service" > "$dir/berthd.service"
  if out=$(verify_units "$dir"); then fail "a missing ExecStart binary passed systemd-analyze verify"; fi
  expect_contains "$out" "Command $WORK/no/berthd is not executable"
}

scenario_service_socket_activated_berthd_answers() {
  local dir=$WORK/svc
  mkdir -p "$dir"
  rm -f "$dir/net-cleaned"
  echo '{}' > "$dir/daemon.json"
  # As systemd with berthd.socket: it binds the socket, and on the first
  # connection execs berthd in its own process with the socket as fd 3,
  # LISTEN_FDS=1 and LISTEN_PID (the ExecStart of berthd.service, and the
  # roots of this run).
  systemd-socket-activate -l "$dir/berth.sock" \
    "$BERTHD" -H fd:// --data-root "$dir/data" --exec-root "$dir/exec" \
    --config-file "$dir/daemon.json" --registry-mirror "http://$REG" --log-level debug \
    >>"$dir/berthd.log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$PIDFILE"
  echo "$pid" > "$dir/pid"
  for _ in $(seq 100); do [ -S "$dir/berth.sock" ] && break; sleep 0.05; done
  [ -S "$dir/berth.sock" ] || fail "systemd-socket-activate did not listen: $(cat "$dir/berthd.log")"
  expect_eq "$(readlink "/proc/$pid/exe")" "$(command -v systemd-socket-activate)" "no berthd before a client comes"
  # The connection that starts berthd is answered: it waited in the backlog.
  local out
  out=$(d svc version --format '{{.Server.Version}} {{.Server.Os}}') || fail "version over the activated socket: $out
$(cat "$dir/berthd.log")"
  expect_eq "${out#* }" "linux"
  expect_eq "$(readlink "/proc/$pid/exe")" "$(readlink -f "$BERTHD")" "berthd runs in the pid systemd started"
  expect_contains "$(cat "$dir/berthd.log")" "Communication attempt on fd 3"
  d svc pull -q busybox >/dev/null
  d svc run --rm busybox true
  expect_eq "$(d svc run --rm busybox echo hi)" "hi"
  expect_eq "$(d svc ps -aq)" ""
  # Stopped as systemd stops it (SIGTERM to the main process): exit 0, and the
  # socket, which systemd owns and keeps listening on, stays where it is.
  kill -TERM "$pid"
  local code=0
  wait "$pid" || code=$?
  expect_eq "$code" "0" "berthd's exit on SIGTERM"
  [ -S "$dir/berth.sock" ] || fail "berthd removed the socket it was passed"
  "$BERTHD" network-cleanup --data-root "$dir/data" --exec-root "$dir/exec"
  touch "$dir/net-cleaned"
}

scenario_deb_package_builds_and_installs_into_a_root() {
  local dir=$WORK/deb
  # Not removed between runs by docker-compat/run (it has no data/): a second
  # unpack into the same root would be an upgrade, whose scripts dpkg runs chrooted.
  rm -rf "$dir"
  mkdir -p "$dir"
  local version arch
  version=$(awk '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.toml")
  arch=$(dpkg --print-architecture)
  # The package of the binaries under test (their target dir; both are there,
  # so nothing is built). gzip at level 1: the release's xz takes half a minute
  # of a shared CPU, and what is checked here is what the package holds.
  local target; target=$(cd "$(dirname "$BERTHD")/.." && pwd)
  local deb
  deb=$(CARGO_TARGET_DIR=$target DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1 \
    bash "$root/scripts/package.sh" "$dir/berth.deb" 2>"$dir/package.err") || fail "package.sh: $(cat "$dir/package.err")"
  expect_eq "$deb" "$dir/berth.deb"
  expect_eq "$(dpkg-deb -f "$deb" Package Version Architecture)" "Package: berth
Version: $version
Architecture: $arch"
  local depends; depends=$(dpkg-deb -f "$deb" Depends)
  for dep in 'libc6 (>= ' 'libseccomp2 (>= ' iptables kmod procps passwd; do
    expect_contains "$depends" "$dep"
  done
  expect_contains "$(dpkg-deb --info "$deb")" "conffiles"
  expect_eq "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" "/etc/berth/daemon.json"
  expect_eq "$(dpkg-deb --contents "$deb" | awk '$1 !~ /^d/ {print $1, $6}' | sort)" "-rw-r--r-- ./etc/berth/daemon.json
-rw-r--r-- ./lib/systemd/system/berthd.service
-rw-r--r-- ./lib/systemd/system/berthd.socket
-rw-r--r-- ./usr/share/doc/berth/README.md
-rw-r--r-- ./usr/share/doc/berth/copyright
-rwxr-xr-x ./usr/bin/berth-shim
-rwxr-xr-x ./usr/bin/berthd"

  # Installed by dpkg into a root of its own (the host's /usr stays as it is):
  # unpacked and its conffile recorded; configure would run postinst chrooted
  # into a root with no shell, so postinst runs below with stubs.
  local r=$dir/root
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates"
  touch "$r/var/lib/dpkg/status"
  dpkg --root="$r" --force-not-root --force-depends --unpack "$deb" >"$dir/dpkg.out" 2>&1 || fail "dpkg --unpack: $(cat "$dir/dpkg.out")"
  expect_eq "$(dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Status} ${Version}' berth)" "install ok unpacked $version"
  expect_eq "$(dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Conffiles}' berth | xargs)" "/etc/berth/daemon.json newconffile"
  expect_eq "$(cat "$r/etc/berth/daemon.json.dpkg-new")" "{}"
  expect_eq "$("$r/usr/bin/berthd" --version)" "$("$BERTHD" --version)"
  expect_contains "$("$r/usr/bin/berthd" --version)" "Berth version $version,"
  [ -x "$r/usr/bin/berth-shim" ] || fail "no berth-shim beside berthd"
  if readelf -d "$r/usr/bin/berth-shim" | grep -q '(NEEDED)'; then fail "the packaged berth-shim is not static"; fi
  # shellcheck disable=SC2016 # $MAINPID is systemd's, literally in the unit
  expect_eq "$(grep -h '^Exec' "$r/lib/systemd/system/berthd.service")" 'ExecStart=/usr/bin/berthd -H fd://
ExecReload=/bin/kill -s HUP $MAINPID'
  expect_eq "$(grep -h '^ListenStream=' "$r/lib/systemd/system/berthd.socket")" "ListenStream=/run/berth.sock"

  # The installed (stripped) berthd runs a container through the installed shim.
  BERTHD=$r/usr/bin/berthd start_with_busybox debroot
  expect_eq "$(d debroot run --rm busybox echo hi)" "hi"
  stop_berthd debroot
  expect_eq "$STOP_CODE" "0"

  # postinst: the group of SocketGroup= on a first install, and nothing on an
  # upgrade; no systemctl where systemd does not run (/run/systemd/system).
  dpkg-deb -e "$deb" "$dir/ctl"
  mkdir -p "$dir/stubs"
  printf '#!/bin/sh\nexit 2\n' > "$dir/stubs/getent"
  printf '#!/bin/sh\necho "groupadd $*" >> %s\n' "$dir/calls" > "$dir/stubs/groupadd"
  printf '#!/bin/sh\necho "systemctl $*" >> %s\n' "$dir/calls" > "$dir/stubs/systemctl"
  chmod +x "$dir/stubs/"*
  for s in postinst prerm postrm; do sh -n "$dir/ctl/$s"; done
  PATH=$dir/stubs:$PATH sh "$dir/ctl/postinst" configure ""
  PATH=$dir/stubs:$PATH sh "$dir/ctl/postinst" configure 0.0.9
  PATH=$dir/stubs:$PATH sh "$dir/ctl/prerm" remove
  PATH=$dir/stubs:$PATH sh "$dir/ctl/postrm" remove
  local want="groupadd --system docker"
  [ -d /run/systemd/system ] && want="$want
systemctl --system daemon-reload
systemctl --system daemon-reload
systemctl --system stop berthd.service berthd.socket
systemctl --system daemon-reload"
  expect_eq "$(cat "$dir/calls")" "$want"
}
