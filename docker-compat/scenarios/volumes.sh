# Volumes: named and anonymous volumes, the image's VOLUMEs, --volumes-from,
# the volume API (create, ls, inspect, rm, prune), system df, docker cp
# through a volume, and the volume events, as dockerd 20.10 answers them
# (each expectation was read off the reference dockerd on this machine).

vol_path() { echo "$WORK/$1/data/volumes/$2/_data"; }
# sorted_entries: ";"-ended entries in sorted order (the CLI sends -v's in
# no fixed order; dockerd's Mounts have none either).
sorted_entries() { tr ';' '\n' | sed '/^$/d' | sort | sed 's/$/;/' | tr -d '\n'; }

scenario_a_named_volume_keeps_its_data_across_containers_and_restarts() {
  start_with_busybox nv
  expect_eq "$(d nv volume create data)" "data"
  # Asked for again, it is the same volume.
  expect_eq "$(d nv volume create data)" "data"
  d nv run --rm -v data:/data busybox sh -c 'echo kept > /data/f'
  expect_eq "$(d nv run --rm -v data:/data:ro busybox cat /data/f)" "kept"
  local out
  out=$(d nv run --rm -v data:/data:ro busybox sh -c 'echo x > /data/g' 2>&1) && fail "wrote through :ro"
  expect_contains "$out" "can't create /data/g: Read-only file system"
  # A volume named at run is made then, without labels or options.
  d nv run --rm -v made:/m busybox true
  expect_eq "$(api nv http://berth/volumes/made | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["Driver"], v["Labels"], v["Options"], v["Scope"], v["Mountpoint"], len(v["CreatedAt"]))')" \
    "local None None local $(vol_path nv made) 20"
  expect_eq "$(d nv volume inspect --format '{{json .Labels}} {{json .Options}}' data)" "null null"
  stop_berthd nv
  # A volume directory no volume names (a create cut by a kill) goes at start.
  mkdir -p "$(vol_path nv stray)" && touch "$(vol_path nv stray)/f"
  start_berthd nv --registry-mirror "http://$REG"
  [ ! -e "$WORK/nv/data/volumes/stray" ] || fail "a stray volume directory stayed"
  expect_eq "$(d nv volume ls)" "DRIVER    VOLUME NAME
local     data
local     made"
  expect_eq "$(d nv run --rm -v data:/data busybox cat /data/f)" "kept"
  out=$(d nv volume inspect missing 2>&1) && fail "inspected a missing volume"
  expect_contains "$out" "get missing: no such volume"
}

scenario_volume_mounts_are_filled_and_shown_as_dockerd() {
  start_with_busybox vm
  # An image with a VOLUME whose content is owned by 1:2.
  d vm run --name base busybox sh -c 'mkdir /vol && echo img > /vol/imgfile && chown 1:2 /vol/imgfile && chmod 640 /vol/imgfile'
  d vm commit --change 'VOLUME /vol' base withvol >/dev/null
  expect_eq "$(d vm run --name anon withvol cat /vol/imgfile)" "img"
  local name; name=$(d vm inspect --format '{{range .Mounts}}{{.Name}}{{end}}' anon)
  [[ $name =~ ^[0-9a-f]{64}$ ]] || fail "anonymous volume name [$name]"
  expect_eq "$(d vm inspect --format '{{range .Mounts}}{{.Type}} {{.Source}} {{.Destination}} {{.Driver}} [{{.Mode}}] {{.RW}} [{{.Propagation}}]{{end}}' anon)" \
    "volume $(vol_path vm "$name") /vol local [] true []"
  expect_eq "$(stat -c '%u:%g %a' "$(vol_path vm "$name")/imgfile")" "1:2 640"
  # A new named volume gets the image's content at its path; nocopy, none.
  d vm run --rm -v etc:/etc busybox true
  expect_eq "$(cat "$(vol_path vm etc)/passwd")" "$(d vm run --rm busybox cat /etc/passwd)"
  d vm run --rm -v bare:/etc:nocopy busybox true
  expect_eq "$(ls -A "$(vol_path vm bare)")" ""
  # A volume with content is not filled again.
  echo mine > "$(vol_path vm bare)/mine"
  d vm run --rm -v bare:/etc busybox true
  expect_eq "$(ls -A "$(vol_path vm bare)")" "mine"
  # Modes as dockerd records them.
  d vm create --name modes -v n1:/a -v n1:/b:ro -v /anon --mount type=volume,src=n1,dst=/m,readonly busybox true >/dev/null
  expect_eq "$(d vm inspect --format '{{range .Mounts}}{{if eq .Name "n1"}}n1{{else}}anon{{end}} {{.Destination}} [{{.Mode}}] {{.RW}};{{end}}' modes | sorted_entries)" \
    "anon /anon [] true;n1 /a [z] true;n1 /b [ro] false;n1 /m [z] false;"
  expect_eq "$(d vm ps -a --filter volume=n1 --format '{{.Names}}')" "modes"
  expect_eq "$(d vm ps -a --filter volume=/anon --format '{{.Names}}')" "modes"
  expect_eq "$(d vm ps -a --filter volume=/vol --format '{{.Names}}')" "anon"
  # --volumes-from carries every mount over; :ro makes them read-only.
  d vm create --name from --volumes-from modes:ro busybox true >/dev/null
  expect_eq "$(d vm inspect --format '{{range .Mounts}}{{.Destination}} [{{.Mode}}] {{.RW}};{{end}}' from | sorted_entries)" \
    "/a [] false;/anon [] false;/b [] false;/m [] false;"
  d vm create --name fromrw --volumes-from modes busybox true >/dev/null
  expect_eq "$(d vm inspect --format '{{range .Mounts}}{{.Destination}} {{.RW}};{{end}}' fromrw | sorted_entries)" \
    "/a true;/anon true;/b false;/m false;"
  expect_eq "$(d vm run --rm --volumes-from anon busybox cat /vol/imgfile)" "img"
  # A tmpfs volume, its size as the kernel shows it.
  d vm volume create --opt type=tmpfs --opt device=tmpfs --opt o=size=1m tv >/dev/null
  expect_eq "$(d vm run --rm -v tv:/t busybox grep ' /t ' /proc/mounts)" "tmpfs /t tmpfs rw,relatime,size=1024k 0 0"
  expect_eq "$(d vm volume inspect --format '{{json .Options}}' tv)" '{"device":"tmpfs","o":"size=1m","type":"tmpfs"}'
}

scenario_volume_rm_prune_df_cp_and_events_as_dockerd() {
  start_with_busybox vl
  local since; since=$(date +%s)
  local id; id=$(d vl create --name user -v used:/u -v /anon busybox true)
  local out
  out=$(d vl volume rm used 2>&1) && fail "removed a volume in use"
  expect_eq "$out" "Error response from daemon: remove used: volume is in use - [$id]"
  out=$(d vl volume rm -f used 2>&1) && fail "force removed a volume in use"
  expect_contains "$out" "volume is in use"
  expect_eq "$(d vl volume rm -f missing)" "missing"
  # docker cp reaches the volume's data, both ways.
  echo cpdata > "$WORK/vl/cpfile"
  d vl cp "$WORK/vl/cpfile" user:/u/cpfile
  expect_eq "$(cat "$(vol_path vl used)/cpfile")" "cpdata"
  expect_eq "$(d vl cp user:/u/cpfile - | tar -xO)" "cpdata"
  expect_eq "$(d vl cp user:/u - | tar -t | sort | tr '\n' ' ')" "u/ u/cpfile "
  local anon; anon=$(d vl inspect --format '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}' user)
  # A run mounts and unmounts; rm -v takes the anonymous volume, not the named.
  d vl run --rm -v used:/u busybox cat /u/cpfile >/dev/null
  d vl rm -v user >/dev/null
  expect_eq "$(d vl volume ls -q)" "used"
  d vl run --rm -v /gone busybox true
  expect_eq "$(d vl volume ls -q)" "used"
  # system df lists volumes with their size and links.
  expect_contains "$(d vl system df -v)" "Local Volumes space usage:"
  expect_eq "$(d vl system df -v | awk '$1 == "used" {print $2, $3}')" "0 7B"
  # prune: anonymous ones only (API 1.42 on), --all for the named too.
  d vl create --name keepanon -v /left busybox true >/dev/null
  local left; left=$(d vl inspect --format '{{range .Mounts}}{{.Name}}{{end}}' keepanon)
  d vl rm keepanon >/dev/null
  expect_eq "$(d vl volume ls -q | sort | tr '\n' ' ')" "$(printf '%s\n' "$left" used | sort | tr '\n' ' ')"
  expect_eq "$(d vl volume prune -f)" "Deleted Volumes:
$left

Total reclaimed space: 0B"
  expect_eq "$(d vl volume prune -af)" "Deleted Volumes:
used

Total reclaimed space: 7B"
  expect_eq "$(d vl volume ls -q)" ""
  expect_eq "$(d vl events --since "$since" --until "$(( $(date +%s) + 1 ))" --filter type=volume \
      --format '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "driver"}} {{index .Actor.Attributes "destination"}}' |
      awk -v a="$anon" '$2 == "used" || $2 == a || $1 == "prune"')" \
    "create used local 
create used local 
create $anon local 
create used local 
mount used local /u
unmount used local 
destroy $anon local 
prune   
prune   "
}

scenario_volumes_over_host_paths_leave_the_host_whole() {
  start_with_busybox vh
  local h=$WORK/vh/host; mkdir -p "$h/share"; echo keep > "$h/share/f"
  # A volume that binds a host directory: read, written, read-only where
  # o=ro says; removing the volume leaves the host's files.
  d vh volume create --opt type=none --opt o=bind --opt device="$h/share" hb >/dev/null
  expect_eq "$(d vh run --rm -v hb:/x busybox sh -c 'cat /x/f; echo new > /x/n')" "keep"
  expect_eq "$(cat "$h/share/n")" "new"
  d vh run --rm -v hb:/x busybox true
  expect_eq "$(awk -v p="$(vol_path vh hb)" '$5 == p' /proc/self/mountinfo | wc -l)" "1"
  d vh volume rm hb >/dev/null
  expect_eq "$(ls "$h/share" | tr '\n' ' ')" "f n "
  d vh volume create --opt type=none --opt o=bind,ro --opt device="$h/share" hro >/dev/null
  local out
  out=$(d vh run --rm -v hro:/x busybox sh -c 'cat /x/f; echo x > /x/w' 2>&1) && fail "wrote through o=ro"
  expect_contains "$out" "Read-only file system"
  d vh volume rm hro >/dev/null
  expect_eq "$(ls "$h/share" | tr '\n' ' ')" "f n "
  # A volume made without a name is a named one to rm -v, as on dockerd 20.10.
  local x; x=$(d vh volume create)
  d vh create --name user -v "$x:/x" busybox true >/dev/null
  d vh rm -v user >/dev/null
  expect_eq "$(d vh volume ls -q)" "$x"
  # docker cp of a file bound over a file reads the host's file.
  echo conf > "$h/app.conf"
  d vh create --name filebind -v "$h/app.conf:/etc/app.conf:ro" busybox true >/dev/null
  expect_eq "$(d vh cp filebind:/etc/app.conf - | tar -xO)" "conf"
  expect_eq "$(d vh cp filebind:/etc/app.conf - | tar -t)" "app.conf"
}

scenario_bad_volume_input_is_refused_in_dockerds_words() {
  start_with_busybox bv
  local out
  refused() {
    if out=$("$@" 2>&1); then fail "accepted: $*"; fi
    expect_contains "$out" "$expected"
  }
  expected='create x1: error looking up volume plugin bogus: plugin "bogus" not found'
  refused d bv volume create -d bogus x1
  expected='create x2: invalid option: "foo"'
  refused d bv volume create --opt foo=bar x2
  expected='create x3: missing required option: "device"'
  refused d bv volume create --opt type=tmpfs x3
  expected='create a/b: "a/b" includes invalid characters for a local volume name'
  refused d bv volume create a/b
  expected='create x: volume name is too short, names should be at least two alphanumeric characters'
  refused d bv volume create x
  expected="invalid volume specification: 'v1:/': invalid mount config for type \"volume\": invalid specification: destination can't be '/'"
  refused d bv create -v v1:/ busybox
  expected='invalid mount config for type "volume": invalid specification: destination can'"'"'t be '"'"'/'"'"
  refused d bv create --mount type=volume,src=v1,dst=/ busybox
  expected='create /abs: "/abs" includes invalid characters for a local volume name'
  refused d bv create --mount type=volume,src=/abs,dst=/x busybox
  expected="Duplicate mount point: /x"
  refused d bv create -v v1:/x -v v2:/x busybox
  expected="No such container: missing"
  refused d bv create --volumes-from missing busybox
  expect_eq "$(d bv volume ls -q)" ""
  expect_eq "$(d bv ps -aq)" ""
  # A bad device is taken at create and fails the start, as dockerd.
  d bv volume create --opt type=none --opt device=/nonexistent --opt o=bind nb >/dev/null
  out=$(d bv run --rm -v nb:/x busybox true 2>&1) && fail "mounted a missing device"
  expect_contains "$out" "error while mounting volume '$(vol_path bv nb)': failed to mount local volume: mount /nonexistent:$(vol_path bv nb), flags: 0x1000: no such file or directory"
}
