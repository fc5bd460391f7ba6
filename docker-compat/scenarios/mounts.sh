# Mounts: bind mounts (-v /host:/path, --mount type=bind) and --mount
# type=tmpfs, as dockerd makes, shows and refuses them. Volumes come with
# issue 15's VolumeService; until then a body that asks for one is refused.

scenario_bind_mounts_read_and_write_both_ways_and_ro_is_enforced() {
  start_with_busybox bm
  local h=$WORK/bm/host; mkdir -p "$h/share"
  echo from-host > "$h/share/in"
  # -v makes a missing host directory (at start, as dockerd does).
  d bm run --rm -v "$h/share:/data" -v "$h/made/deep:/made" busybox \
    sh -c 'cat /data/in; echo from-container > /data/out; echo x > /made/x' > "$WORK/bm/out"
  expect_eq "$(cat "$WORK/bm/out")" "from-host"
  expect_eq "$(cat "$h/share/out")" "from-container"
  expect_eq "$(stat -c %a "$h/made/deep")" "755"
  [ -f "$h/made/deep/x" ] || fail "write through a made bind source is not on the host"
  # :ro and readonly are enforced by the kernel.
  local out
  out=$(d bm run --rm -v "$h/share:/ro:ro" --mount "type=bind,src=$h/share,dst=/ro2,readonly" busybox \
    sh -c 'cat /ro/in; echo x > /ro/new; echo x > /ro2/new; for m in /ro /ro2; do echo "$m $(grep " $m " /proc/mounts | cut -d" " -f4 | cut -d, -f1)"; done' 2>&1) || true
  expect_contains "$out" "from-host"
  expect_contains "$out" "can't create /ro/new: Read-only file system"
  expect_contains "$out" "can't create /ro2/new: Read-only file system"
  expect_contains "$out" "/ro ro"
  expect_contains "$out" "/ro2 ro"
  [ ! -e "$h/share/new" ] || fail "a read-only bind mount was written"
  # A running container sees what the host writes meanwhile.
  d bm run -d --name live -v "$h/share:/data" busybox sleep 300 >/dev/null
  echo later > "$h/share/later"
  expect_eq "$(d bm exec live cat /data/later)" "later"
  # Inspect and ps show them as dockerd fills them.
  d bm create --name shown -v "$h/share:/m:rw" --mount "type=bind,src=$h/share,dst=/p,bind-propagation=rslave" \
    --mount type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770 busybox true >/dev/null
  expect_eq "$(d bm inspect --format '{{range .Mounts}}{{.Type}} {{.Source}} {{.Destination}} [{{.Mode}}] {{.RW}} [{{.Propagation}}];{{end}}' shown)" \
    "bind $h/share /m [rw] true [rprivate];bind $h/share /p [] true [rslave];tmpfs  /t [] true [];"
  expect_eq "$(d bm ps -a --no-trunc --filter name=shown --format '{{.Mounts}}')" "$h/share,$h/share,"
  # tmpfs with its size and mode, as the kernel shows them.
  expect_eq "$(d bm run --rm --mount type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770 busybox grep ' /t ' /proc/mounts)" \
    "tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770 0 0"
  d bm rm -f live shown >/dev/null
}

scenario_bad_mounts_are_refused_in_dockerds_words_and_nothing_is_created() {
  start_with_busybox badm
  local h=$WORK/badm/host; mkdir -p "$h"
  local out
  refused() {
    if out=$(d badm create --name never "$@" busybox true 2>&1); then fail "created with $*"; fi
    expect_contains "$out" "$expected"
  }
  expected="invalid mount config for type \"bind\": bind source path does not exist: $h/missing"
  refused --mount "type=bind,src=$h/missing,dst=/x"
  [ ! -e "$h/missing" ] || fail "--mount made a missing source"
  expected="invalid volume specification: '$h:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
  refused -v "$h:/"
  expected="invalid mount path: 'rel' mount path must be absolute"
  refused -v "$h:rel"
  expected="invalid mode: bogus"
  refused -v "$h:/x:bogus"
  expected="Duplicate mount point: /x"
  refused -v "$h:/x" --mount "type=bind,src=$h,dst=/x"
  expected="invalid mount config for type \"bind\": field Source must not be empty"
  refused --mount "type=bind,dst=/x"
  expected="includes invalid characters for a local volume name"
  refused -v "bad name:/x"
  expect_eq "$(d badm ps -aq)" ""
  # Propagation the host's mount cannot give is refused at start, as dockerd
  # does (where the host's mount is shared, it is given).
  local id status
  id=$(d badm create -v "$h:/m:shared" busybox true)
  status=$(api badm -o "$WORK/badm/start.out" -w '%{http_code}' -X POST "http://berth/containers/$id/start")
  if [ "$status" = 204 ]; then
    expect_contains "$(findmnt -no PROPAGATION --target "$h")" "shared"
  else
    expect_eq "$status" "500" "dockerd's status for a propagation the host cannot give"
    expect_contains "$(cat "$WORK/badm/start.out")" "is mounted on $(findmnt -no TARGET --target "$h") but it is not a shared mount"
    expect_eq "$(d badm inspect -f '{{.State.Status}}' "$id")" "created"
  fi
  d badm rm -f "$id" >/dev/null
  expect_eq "$(d badm ps -aq)" ""
}
