# A container's files from the host: docker cp both ways, diff, export,
# commit, and container prune.

scenario_cp_in_and_out_stays_inside_the_container() {
  start_with_busybox cp
  local t=$WORK/cp/files; mkdir -p "$t/in/sub"
  echo hello > "$t/in/a.txt"; echo deep > "$t/in/sub/b.txt"
  d cp run -d --name box busybox sh -c 'ln -s ../../../../../../etc /tmp/up; ln -s /etc/passwd /tmp/pw; sleep 300' >/dev/null
  sleep 0.3
  # Into a running container: a file, then a directory.
  d cp cp "$t/in/a.txt" box:/tmp/
  d cp cp "$t/in" box:/tmp/dir
  expect_eq "$(d cp exec box cat /tmp/a.txt /tmp/dir/sub/b.txt)" "hello
deep"
  # Out of it: a file to stdout as a tar, a directory, and the contents of one (/.).
  expect_eq "$(d cp cp box:/tmp/dir/sub/b.txt - | tar -xO)" "deep"
  d cp cp box:/tmp/dir "$t/out"
  expect_eq "$(cat "$t/out/sub/b.txt")" "deep"
  mkdir "$t/dot"; d cp cp box:/tmp/dir/. "$t/dot"
  expect_eq "$(cat "$t/dot/a.txt")" "hello"
  # Symlinks resolve inside the container: ../../.. stops at its root, and an
  # absolute target is the container's, never the host's.
  expect_eq "$(d cp cp box:/tmp/up/passwd - | tar -xO)" "$(d cp exec box cat /etc/passwd)"
  [ "$(d cp cp box:/tmp/up/passwd - | tar -xO)" != "$(cat /etc/passwd)" ] || fail "read the host's /etc/passwd"
  # The link itself is copied, as dockerd copies it (no -L).
  d cp cp box:/tmp/pw "$t/pw"
  expect_eq "$(readlink "$t/pw")" "/etc/passwd"
  # A tar from stdin is read to its end: what follows its end-of-archive block
  # (here 4 MiB of padding) is drained before the answer, as dockerd does, so
  # a client still writing never meets a closed connection ("broken pipe").
  d cp exec box mkdir -p /tmp/padded
  (tar cf - -C "$t/in" a.txt; head -c 4194304 /dev/zero) | d cp cp - box:/tmp/padded/
  expect_eq "$(d cp exec box cat /tmp/padded/a.txt)" "hello"
  d cp cp "$t/in/a.txt" box:/tmp/up/
  expect_eq "$(d cp exec box cat /etc/a.txt)" "hello"
  [ ! -e /etc/a.txt ] || fail "docker cp wrote to the host's /etc"
  # Errors, in dockerd's words.
  local out
  if out=$(d cp cp box:/nonexistent "$t/x" 2>&1); then fail "cp of a missing path succeeded"; fi
  expect_contains "$out" "Could not find the file /nonexistent in container box"
  if out=$(d cp cp "$t/in/a.txt" box:/nodir/sub/ 2>&1); then fail "cp into a missing directory succeeded"; fi
  expect_contains "$out" "no such directory"
  # A stopped container's files are reachable too (its layers mounted privately).
  d cp stop -t 0 box >/dev/null
  d cp cp "$t/in/a.txt" box:/root/
  expect_eq "$(d cp cp box:/root/a.txt - | tar -xO)" "hello"
  d cp rm box >/dev/null
  d cp create --name ro --read-only busybox true >/dev/null
  if out=$(d cp cp "$t/in/a.txt" ro:/tmp/ 2>&1); then fail "cp into a read-only rootfs succeeded"; fi
  expect_contains "$out" "container rootfs is marked read-only"
  d cp rm ro >/dev/null
}

scenario_diff_export_and_commit() {
  start_with_busybox cm
  d cm run --name chg busybox sh -c 'echo x > /tmp/new; echo y >> /etc/motd; rm /bin/vi; mkdir /made' >/dev/null
  # dockerd lists them in no set order (a Go map); berth in path order.
  expect_eq "$(d cm diff chg)" "C /bin
D /bin/vi
C /etc
A /etc/motd
A /made
C /tmp
A /tmp/new"
  d cm create --name clean busybox true >/dev/null
  expect_eq "$(d cm diff clean)" ""
  # export: the whole filesystem, changes included.
  local t=$WORK/cm/files; mkdir -p "$t"
  d cm export chg -o "$t/fs.tar"
  tar -tf "$t/fs.tar" > "$t/list"
  grep -qx 'tmp/new' "$t/list" || fail "export lacks tmp/new"
  grep -qx 'bin/sh' "$t/list" || fail "export lacks bin/sh"
  ! grep -qx 'bin/vi' "$t/list" || fail "export has the deleted bin/vi"
  # commit: the changes, deletions included, become an image with the container's config.
  local img; img=$(d cm commit -c 'ENV COMMITTED=yes' -m 'my change' -a tester chg snap:v1)
  expect_contains "$img" "sha256:"
  expect_eq "$(d cm run --rm snap:v1 sh -c 'cat /tmp/new; echo $COMMITTED; test -e /bin/vi || echo novi')" "x
yes
novi"
  expect_eq "$(d cm inspect -f '{{.Comment}} {{.Author}} {{len .RootFS.Layers}}' snap:v1)" "my change tester 2"
  expect_eq "$(d cm history -q snap:v1 | wc -l | tr -d ' ')" "2"
  local out
  if out=$(d cm commit -c 'BOGUS x' chg bad 2>&1); then fail "a bad --change was accepted"; fi
  expect_contains "$out" "bogus is not a valid change command"
  # prune: every container that does not run goes; a running one stays.
  d cm run -d --name up busybox sleep 300 >/dev/null
  out=$(d cm container prune -f)
  expect_contains "$out" "Total reclaimed space"
  expect_eq "$(d cm ps -a --format '{{.Names}}')" "up"
  d cm rm -f up >/dev/null
}

scenario_json_file_log_rotation() {
  start_with_busybox lg
  local id; id=$(d lg run -d --name rot --log-opt max-size=1k --log-opt max-file=3 busybox sh -c 'for i in $(seq 1 100); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; done')
  d lg wait rot >/dev/null
  local dir=$WORK/lg/data/containers/$id
  [ -f "$dir/$id-json.log.1" ] && [ -f "$dir/$id-json.log.2" ] || fail "no rotated files: $(ls "$dir")"
  [ ! -e "$dir/$id-json.log.3" ] || fail "more files kept than max-file"
  [ "$(stat -c %s "$dir/$id-json.log.1")" -lt 1200 ] || fail "a rotated file is over max-size"
  # docker logs reads the rotated files too, oldest first, and ends with the last line.
  local out; out=$(d lg logs rot)
  expect_eq "$(echo "$out" | tail -1)" "line-100-xxxxxxxxxxxxxxxxxxxxxxxx"
  [ "$(echo "$out" | wc -l)" -ge 20 ] || fail "logs lost the rotated files"
  expect_eq "$(echo "$out" | sort -t- -k2 -n | head -1)" "$(echo "$out" | head -1)" "out of order"
  if out=$(d lg run --log-opt max-size=abc busybox true 2>&1); then fail "a bad max-size was accepted"; fi
  expect_contains "$out" "invalid size: 'abc'"
  if out=$(d lg run --log-opt nope=1 busybox true 2>&1); then fail "an unknown log opt was accepted"; fi
  expect_contains "$out" "unknown log opt 'nope' for json-file log driver"
  d lg rm rot >/dev/null
}
