# userns-remap: containers whose root is an unprivileged range of the host's
# ids (dockerd's "default": the dockremap user and its /etc/subuid range).

# oneline: whitespace squeezed, as uid_map columns are padded.
oneline() { tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//'; }

scenario_userns_remap_runs_root_as_a_subordinate_range() {
  # As dockerd, berthd refuses a root the remapped root cannot walk through.
  local out
  mkdir -p "$WORK/closed"
  chmod 700 "$WORK/closed"
  if out=$("$BERTHD" -H "unix://$WORK/closed/s.sock" --data-root "$WORK/closed/d/data" \
      --exec-root "$WORK/closed/d/exec" --config-file /dev/null --userns-remap default 2>&1); then
    fail "berthd ran with a closed root"
  fi
  expect_contains "$out" "restricts access to the remapped root uid/gid"
  chmod o+x "$WORK"
  start_with_busybox un --userns-remap default
  local start; start=$(grep '^dockremap:' /etc/subuid | head -1 | cut -d: -f2)
  [ -n "$start" ] || fail "no dockremap range in /etc/subuid"
  expect_contains "$(d un info --format '{{.SecurityOptions}}')" "name=userns"
  expect_eq "$(d un run --rm busybox cat /proc/self/uid_map | oneline)" "0 $start 65536"
  expect_eq "$(d un run --rm busybox cat /proc/self/gid_map | oneline)" "0 $start 65536"

  d un run -d --name box busybox sh -c 'touch /made; sleep 300' >/dev/null
  local pid; pid=$(d un inspect -f '{{.State.Pid}}' box)
  # Root in the container is the range's first id on the host.
  expect_eq "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" "$start"
  # The image's files are root's inside (idmapped layers), and root writes
  # in / and in its /etc files.
  expect_eq "$(d un exec box stat -c '%u %g' /bin/busybox)" "0 0"
  expect_eq "$(d un exec box sh -c 'stat -c %u /etc/hosts; echo ok >> /etc/hosts && echo wrote')" "$(printf '0\nwrote')"
  local upper; upper=$(d un inspect -f '{{.GraphDriver.Data.UpperDir}}' box)
  expect_eq "$(stat -c %u "$upper/made")" "$start"
  # A bind mount under userns-remap: the host's files read as they are (a
  # host root's file is nobody's inside, as on dockerd), what root writes lands
  # as the range's first id, and :ro holds.
  mkdir -p "$WORK/un-bind"; chmod 777 "$WORK/un-bind"; echo host > "$WORK/un-bind/f"
  expect_eq "$(d un run --rm -v "$WORK/un-bind:/b" -v "$WORK/un-bind:/r:ro" busybox \
    sh -c 'cat /b/f; stat -c %u /b/f; echo c > /b/c; echo x > /r/x 2>/dev/null || echo ro-refused')" \
    "$(printf 'host\n65534\nro-refused')"
  expect_eq "$(stat -c %u "$WORK/un-bind/c")" "$start"
  # A named volume under userns-remap: the image's files copied in and what
  # root writes are root's inside and the range's first id on the host.
  expect_eq "$(d un run --rm -v unvol:/etc busybox sh -c 'stat -c %u /etc/passwd; echo w > /etc/w && stat -c %u /etc/w')" \
    "$(printf '0\n0')"
  local unvol; unvol=$(d un volume inspect -f '{{.Mountpoint}}' unvol)
  expect_eq "$(stat -c %u "$unvol" "$unvol/passwd" "$unvol/w" | oneline)" "$start $start $start"
  # Execs join its user namespace; -u users are shifted too.
  expect_eq "$(d un exec box cat /proc/self/uid_map | oneline)" "0 $start 65536"
  expect_eq "$(d un exec -u 1000 box id -u)" "1000"
  # Its network namespace is its own (sysfs shows its eth0).
  expect_eq "$(d un exec box cat /sys/class/net/eth0/address)" \
    "$(d un inspect -f '{{.NetworkSettings.MacAddress}}' box)"
  # docker cp and commit speak the container's ids, the disk the host's.
  expect_eq "$(d un cp box:/made - | tar tvf - | awk '{print $2}')" "0/0"
  echo data > "$WORK/in.txt"
  d un cp "$WORK/in.txt" box:/in.txt
  expect_eq "$(d un exec box stat -c %u /in.txt)" "0"
  expect_eq "$(stat -c %u "$upper/in.txt")" "$start"
  d un commit box made:1 >/dev/null
  expect_eq "$(d un run --rm --userns=host made:1 stat -c %u /made)" "0"

  # --userns=host opts out; what cannot be remapped is refused in dockerd's words.
  expect_eq "$(d un run --rm --userns=host busybox cat /proc/self/uid_map | oneline)" "0 0 4294967295"
  if out=$(d un run --rm --privileged busybox true 2>&1); then fail "privileged ran remapped"; fi
  expect_contains "$out" "privileged mode is incompatible with user namespaces"
  if out=$(d un run --rm --network host busybox true 2>&1); then fail "host network ran remapped"; fi
  expect_contains "$out" "cannot share the host's network namespace when user namespaces are enabled"
  d un run --rm --privileged --userns=host busybox true

  # A start that fails after its user namespace was made leaves none behind
  # (the host port is box's).
  local port; port=$(free_port)
  d un run -d --name web -p "127.0.0.1:$port:80" busybox sleep 300 >/dev/null
  if out=$(d un run -d --name clash -p "127.0.0.1:$port:80" busybox sleep 300 2>&1); then
    fail "a port in use was published twice"
  fi
  expect_contains "$out" "port is already allocated"
  expect_eq "$(ls "$WORK/un/exec/userns" | wc -l)" "2"

  d un rm -f box web clash >/dev/null
  d un rmi made:1 >/dev/null
  # Nothing of its user namespace stays mounted.
  expect_eq "$(grep -c "$WORK/un/exec/userns" /proc/self/mountinfo)" "0"
}
